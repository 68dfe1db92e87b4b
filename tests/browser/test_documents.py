"""The documents on a referral's page, in a real browser: the sender's case worker attaches a
file on a phone (no file chosen is refused beside the field; the progress bar shows while it
goes), the receiving focal point sees it arrive verified and downloads it, byte-identical, as
an attachment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.browser.test_referral_round_trip import reload_until
from tests.e2e.conftest import client
from tests.e2e.test_referrals import reaches, send


async def test_a_file_is_attached_on_a_phone_and_downloaded_at_the_other_organisation(
    running_network: dict[str, Any],
    browser: Browser,
    contexts: list[BrowserContext],
    tmp_path: Path,
) -> None:
    creds = running_network
    referral_id = await send(creds)
    async with client(creds, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
    content = b"%PDF-1.7\n" + os.urandom(3 * 1024 * 1024)
    source = tmp_path / "certificat.pdf"
    source.write_bytes(content)

    sender = await open_page(contexts, browser, phone=True)
    await log_in(sender, creds, "sanad", "caseworker")
    await sender.goto(url_of(creds, "sanad", f"/referrals/{referral_id}"))
    documents = sender.locator("#documents")
    await expect(documents).to_contain_text("Aucun document pour l'instant.")
    await sender.get_by_role("button", name="Joindre le fichier").click()
    await expect(sender.locator("#file-error")).to_contain_text("Choisissez d'abord un fichier.")
    await sender.get_by_label("Un fichier pour l'autre organisation").set_input_files(source)
    await sender.get_by_role("button", name="Joindre le fichier").click()
    await expect(sender.locator("p.notice")).to_contain_text("Fichier joint")
    mine = sender.locator("li.file.mine")
    await expect(mine).to_contain_text("certificat.pdf")
    await expect(mine).to_contain_text("En route")
    await screenshot(sender, "documents-phone")

    receiver = await open_page(contexts, browser)
    await log_in(receiver, creds, "amal", "focal_point")
    await receiver.goto(url_of(creds, "amal", f"/referrals/{referral_id}"))
    await reload_until(receiver, "#documents", "Arrivé, vérifié")
    async with receiver.expect_download() as waiting:
        await receiver.locator("#documents").get_by_role("link", name="Télécharger").click()
    download = await waiting.value
    assert download.suggested_filename == "certificat.pdf"
    saved = tmp_path / "downloaded.pdf"
    await download.save_as(saved)
    assert saved.read_bytes() == content
