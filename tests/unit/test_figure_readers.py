"""The network's figures and the page that draws them admit the same people, the auditor too."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from services.audit import api as audit_api
from services.dashboard import network_pages
from shared.auth import Role, guarded_routes


def roles_of(router: APIRouter, prefix: str = "") -> dict[tuple[str, str], list[frozenset[Role]]]:
    app = FastAPI()
    app.include_router(router, prefix=prefix)
    return {
        (route.method, route.path): [r.roles for r in route.requirements]
        for route in guarded_routes(app.routes)
    }


def test_the_figures_api_and_the_network_page_admit_the_same_roles() -> None:
    figures = {
        key: roles
        for key, roles in roles_of(audit_api.router, "/api/v1/audit").items()
        if "/figures/" in key[1]
    }
    page = roles_of(network_pages.router)[("GET", "/network")]
    assert len(figures) == 4
    assert all(roles == page for roles in figures.values())


def test_an_auditor_reads_the_figures_but_changes_no_membership() -> None:
    table = roles_of(network_pages.router)
    assert any(Role.AUDITOR in roles for roles in table[("GET", "/network")])
    membership = table[("POST", "/network/members/{org_id}/membership")]
    assert all(Role.AUDITOR not in roles for roles in membership)
