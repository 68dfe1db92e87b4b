"""Directory exports on a real PostgreSQL, through real bearer tokens: the HSDS view and the
3W download, as another directory or the secretariat's spreadsheet receives them."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from services.auth.main import MIGRATIONS
from services.auth.main import service as auth_service
from services.directory import export_api, store
from shared import db
from shared.auth import Role, add_user, issue_access_token
from shared.auth.store import SCHEMA
from shared.contracts.directory import (
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
    ServiceOffer,
)
from tests.integration.apps import app_of, node_settings

PREFIX = "/api/v1/directory"
# 23:30 UTC on 15 February 2026: 23:30 in Casablanca, which went to UTC+0 for Ramadan at 02:00.
CAPACITY_SET_AT = datetime(2026, 2, 15, 23, 30, tzinfo=UTC)


@dataclass
class Node:
    client: httpx.AsyncClient
    token: str  # a case worker's: the least of the staff roles

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def organisation(org_id: str, status: MembershipStatus, name: str) -> OrganisationPublished:
    return OrganisationPublished(
        org_id=org_id,
        version=1,
        name=LocalisedText(fr=name, ar="جمعية"),
        kind=OrganisationKind.NGO,
        status=status,
        city="oujda",
        services=[
            ServiceOffer(
                service_id="soins",
                category="primary_health",
                cities=["oujda", "nador"],
                capacity_set_at=CAPACITY_SET_AT,
            ),
            ServiceOffer(service_id="ecoute", category="legal_aid", national=True),
        ],
    )


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    settings = node_settings(database_url)
    pool = await db.create_pool(database_url, max_size=4)
    await db.migrate(pool, SCHEMA, [MIGRATIONS])
    async with pool.acquire() as conn:
        await store.save_organisation(
            conn, organisation("amal", MembershipStatus.ACTIVE, "Amal, santé, Oujda")
        )
        await store.save_organisation(
            conn, organisation("nour", MembershipStatus.SUSPENDED, "Nour")
        )
    await add_user(pool, "amina", "correct horse battery", Role.CASEWORKER)
    token = await issue_access_token(pool, "amina")
    app = app_of(
        settings, pool, [("/api/v1/auth", auth_service.router), (PREFIX, export_api.router)]
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sanad.test") as client:
            yield Node(client, token)
    finally:
        await pool.close()


async def test_an_anonymous_caller_gets_no_export(node: Node) -> None:
    for path in ("/hsds/organizations", "/hsds/services", "/exports/3w.csv"):
        response = await node.client.get(PREFIX + path)
        assert response.status_code == 401, path


async def test_the_hsds_view_lists_only_active_organisations_with_their_services(
    node: Node,
) -> None:
    response = await node.client.get(f"{PREFIX}/hsds/organizations", headers=node.auth)
    assert response.status_code == 200
    page = response.json()
    assert (page["total_items"], page["page_number"], page["empty"]) == (1, 1, False)
    (amal,) = page["contents"]
    assert amal["name"] == "Amal, santé, Oujda"
    assert [s["x-relais"]["service_id"] for s in amal["services"]] == ["soins", "ecoute"]
    by_id = await node.client.get(f"{PREFIX}/hsds/organizations/{amal['id']}", headers=node.auth)
    assert by_id.json()["id"] == amal["id"]
    suspended = await node.client.get(f"{PREFIX}/hsds/organizations/nour", headers=node.auth)
    assert suspended.status_code == 404
    assert suspended.headers["content-type"] == "application/problem+json"


async def test_a_service_is_found_by_the_id_its_listing_gave(node: Node) -> None:
    listing = await node.client.get(
        f"{PREFIX}/hsds/services", params={"organization_id": "amal"}, headers=node.auth
    )
    first = listing.json()["contents"][0]
    response = await node.client.get(f"{PREFIX}/hsds/services/{first['id']}", headers=node.auth)
    assert response.status_code == 200
    assert response.json()["organization"]["name"] == "Amal, santé, Oujda"


async def test_the_3w_download_is_a_dated_hxl_csv_that_a_spreadsheet_reads(node: Node) -> None:
    response = await node.client.get(f"{PREFIX}/exports/3w.csv", headers=node.auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r"attachment; filename=relais-3w-\d{4}-\d{2}-\d{2}\.csv",
        response.headers["content-disposition"],
    )
    assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    headers, tags, *rows = csv.reader(io.StringIO(response.content.decode("utf-8-sig")))
    assert headers[0] == "Organisation"
    assert tags[0] == "#org +name"
    assert [(row[0], row[11] or row[13]) for row in rows] == [
        ("Amal, santé, Oujda", "Oujda"),
        ("Amal, santé, Oujda", "Nador"),
        ("Amal, santé, Oujda", "Nationale"),
    ]


async def test_the_3w_says_when_capacity_was_set_in_moroccan_time_naming_the_zone(
    node: Node,
) -> None:
    response = await node.client.get(f"{PREFIX}/exports/3w.csv", headers=node.auth)
    headers, tags, *rows = csv.reader(io.StringIO(response.content.decode("utf-8-sig")))
    column = tags.index("#date +capacity")
    assert headers[column] == "Capacité mise à jour le (heure locale, Africa/Casablanca)"
    assert [row[column] for row in rows] == ["2026-02-15 23:30", "2026-02-15 23:30", ""]
