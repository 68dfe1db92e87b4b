"""A new organisation joins from the hub's dashboard: the coordinator records the application
file ``relais node init`` wrote (a file that is not one is refused beside the field), admits
the organisation, downloads its credentials file and renews it; other roles are refused.

The organisation has an id of its own per run and leaves the network at the end: the other
tests find the directory and the hub's accounts as they were."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from deploy.joining import APPLICATION_FILE, init_node
from deploy.network import Network
from shared.contracts.directory import (
    LocalisedText,
    MembershipStatus,
    OrganisationPublished,
    PublicKey,
)
from shared.crypto import NodeKeys
from shared.membership.joining import Credentials, load_or_create_nkey, nkey_public
from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.e2e.conftest import client
from tests.waiting import eventually

NAME = "Association Nouvelle Arrivée"


@pytest.fixture
async def new_node(
    tmp_path: Path, network: Network, running_network: dict[str, Any]
) -> AsyncIterator[tuple[str, Path]]:
    """A new organisation's folder after ``relais node init``: its keys and application."""
    org = f"dash_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "node"
    keys = [PublicKey.model_validate(k) for k in NodeKeys.load_or_create(folder).public_keys()]
    record = OrganisationPublished(
        org_id=org,
        version=1,
        name=LocalisedText(fr=NAME, ar="", en=""),
        kind="ngo",
        status=MembershipStatus.APPLICANT,
        city="rabat",
        keys=keys,
    )
    init_node(folder, record, network.hub_material.address)
    yield org, folder
    async with client(running_network, "hub", "coordinator") as hub:
        await hub.post(
            f"/api/v1/directory/organisations/{org}/membership", json={"action": "leave"}
        )


async def upload(page: Page, name: str, content: bytes) -> None:
    await page.get_by_label("Fichier de candidature (application.json)").set_input_files(
        {"name": name, "mimeType": "application/json", "buffer": content}
    )
    await page.get_by_role("button", name="Enregistrer la candidature").click()


async def download(page: Page, tmp_path: Path) -> tuple[Credentials, str]:
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Télécharger le fichier d'identifiants").click()
    got = await waiting.value
    saved = tmp_path / got.suggested_filename
    await got.save_as(saved)
    return Credentials.model_validate_json(saved.read_bytes()), got.suggested_filename


async def test_the_coordinator_admits_a_node_from_its_application_file_and_gives_its_credentials(
    running_network: dict[str, Any],
    network: Network,
    new_node: tuple[str, Path],
    browser: Browser,
    contexts: list[BrowserContext],
    tmp_path: Path,
) -> None:
    creds = running_network
    org, folder = new_node
    written = (folder / APPLICATION_FILE).read_bytes()
    page = await open_page(contexts, browser)
    await log_in(page, creds, "hub", "coordinator")
    await page.goto(url_of(creds, "hub", "/network"))
    await page.get_by_role("link", name="Enregistrer un fichier de candidature").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Enregistrer une candidature")

    # A file that is not an application, then one changed after it was signed: each refused
    # beside the field, saying why, and the form still there to try again.
    await upload(page, "application.json", b"ceci n'est pas du JSON")
    await expect(page.locator("#application-error")).to_contain_text("ce n'est pas du JSON")
    tampered = json.loads(written)
    tampered["record"]["name"]["fr"] = "Une autre association"
    await upload(page, "application.json", json.dumps(tampered).encode())
    await expect(page.locator("#application-error")).to_contain_text(
        "La signature de la candidature ne correspond pas à ses clés"
    )
    await upload(page, "application.json", b'{"org_id": "x"}')
    await expect(page.locator("#application-error")).to_contain_text(
        "n'est pas une candidature valide"
    )
    await screenshot(page, "application-refused")

    # The application relais node init wrote: recorded, listed, admitted.
    await upload(page, APPLICATION_FILE, written)
    await expect(page.locator(".notice")).to_contain_text("La candidature est enregistrée")
    application = page.locator("article.application", has_text=NAME)
    await expect(application).to_be_visible()
    await application.get_by_role("button", name="Admettre").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Identifiants de {NAME}")
    await expect(page.locator(".notice")).to_contain_text("Admise")
    await screenshot(page, "credentials")

    issued, filename = await download(page, tmp_path)
    assert filename == f"{org}-credentials.json"
    assert issued.org_id == org
    assert issued.account == f"ORG_{org}"
    assert issued.nkey == nkey_public(load_or_create_nkey(folder))
    assert issued.hub == network.hub_material.address
    assert issued.hub_leaf_urls == network.hub_material.leaf_urls
    assert issued.ca_certificate == network.hub_material.ca_file.read_text()
    assert issued.expires_at > datetime.now(UTC) + timedelta(days=360)  # the default year

    async def in_the_accounts() -> bool:
        return f"ORG_{org}" in network.hub_material.accounts_file.read_text()

    await eventually(in_the_accounts, within=10, what=f"ORG_{org} in the hub's accounts file")

    # The file is never kept in a cache.
    cookies = await page.context.cookies()
    async with httpx.AsyncClient(cookies={c["name"]: c["value"] for c in cookies}) as http:
        raw = await http.get(url_of(creds, "hub", f"/network/members/{org}/credentials/file"))
    assert raw.headers["cache-control"] == "no-store"
    assert raw.headers["content-disposition"] == f'attachment; filename="{org}-credentials.json"'

    # Renewed for a month, from today: the new file says so.
    await page.get_by_label("Durée de validité des identifiants (jours)").fill("30")
    await page.get_by_role("button", name="Renouveler les identifiants").click()
    await expect(page.locator(".notice")).to_contain_text("Renouvelé")
    renewed, _ = await download(page, tmp_path)
    assert renewed.nkey == issued.nkey
    assert renewed.expires_at < datetime.now(UTC) + timedelta(days=31)

    # The same application again: the organisation is already known.
    await page.goto(url_of(creds, "hub", "/network/applications/new"))
    await upload(page, APPLICATION_FILE, written)
    await expect(page.locator("#application-error")).to_contain_text("déjà dans l'annuaire")


@pytest.mark.parametrize(("node", "role"), [("hub", "auditor"), ("sanad", "caseworker")])
async def test_only_the_coordinator_may_admit_nodes_or_give_credentials(
    running_network: dict[str, Any],
    browser: Browser,
    contexts: list[BrowserContext],
    node: str,
    role: str,
) -> None:
    creds = running_network
    page = await open_page(contexts, browser)
    await log_in(page, creds, node, role)
    for path in ("/network/applications/new", "/network/members/sanad/credentials/file"):
        response = await page.goto(url_of(creds, node, path))
        assert response is not None
        assert response.status == 403
        await expect(page.get_by_role("heading", level=1)).to_have_text("Action non autorisée")
