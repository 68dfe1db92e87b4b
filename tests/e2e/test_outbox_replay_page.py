"""The outbox replay on the administrator's pages: the form, the confirmation saying what will
go out and that repeats are recognised, then the counts; through a real login session on a
real node, as an operator's browser does it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from tests.e2e.conftest import client
from tests.e2e.test_dead_letters import CSRF, REFERRAL, logged_in, recorded, status_at
from tests.waiting import eventually

Creds = dict[str, Any]
MOROCCO = ZoneInfo("Africa/Casablanca")
PAGE = "/admin/outbox-replay"


async def test_an_administrator_replays_the_outbox_from_the_admin_page(
    running_network: Creds,
) -> None:
    async with client(running_network, "sanad", "caseworker") as sanad:
        created = await sanad.post("/api/v1/referrals", json=REFERRAL)
        assert created.status_code == 201, created.text
        referral_id = created.json()["referral_id"]

        async def settled() -> bool:  # the last row this referral writes at sanad
            return await status_at(sanad, referral_id) == "received"

        await eventually(settled, within=30, what="sanad learns it was received")
    # The time as an operator types it: Morocco's wall clock, to the minute.
    sanad_db = await asyncpg.connect(running_network["nodes"]["sanad"]["database_url"])
    try:
        now = await sanad_db.fetchval("SELECT now()")
        start = (now - timedelta(minutes=10)).astimezone(MOROCCO).replace(second=0, microsecond=0)
        expected = await sanad_db.fetchval(
            "SELECT count(*) FROM referrals.outbox WHERE created_at >= $1", start
        )
    finally:
        await sanad_db.close()
    assert expected > 0
    since = start.strftime("%Y-%m-%dT%H:%M")

    admin = await logged_in(running_network, "sanad", "admin")
    focal_point = await logged_in(running_network, "sanad", "focal_point")
    try:
        audited_before = len(await recorded(admin, "outbox.replayed", "outbox:referrals"))
        form = await admin.get(PAGE)
        assert form.status_code == 200
        assert f'<a href="{PAGE}"' in form.text  # in the administrator's menu
        assert '<option value="referrals"' in form.text
        found = CSRF.search(form.text)
        assert found is not None
        csrf = found.group(1)

        empty = await admin.post(f"{PAGE}/confirm", data={"csrf_token": csrf, "since": "hier"})
        assert empty.status_code == 422 and "Indiquez une heure" in empty.text
        alone = await admin.post(f"{PAGE}/confirm", data={"csrf_token": csrf, "since": "1"})
        assert alone.status_code == 422 and "choisissez aussi le service" in alone.text

        confirm = await admin.post(
            f"{PAGE}/confirm", data={"csrf_token": csrf, "since": since, "service": "referrals"}
        )
        assert confirm.status_code == 200
        assert "Les répétitions sont reconnues" in confirm.text
        assert "sera publié à nouveau" in confirm.text and "referrals" in confirm.text
        assert f'name="since" value="{since}"' in confirm.text
        # Confirming shows what would happen; nothing is published yet.
        assert len(await recorded(admin, "outbox.replayed", "outbox:referrals")) == audited_before

        forged = await admin.post(PAGE, data={"since": since, "service": "referrals"})
        assert forged.status_code == 403
        refused = await focal_point.post(
            PAGE, data={"csrf_token": csrf, "since": since, "service": "referrals"}
        )
        assert refused.status_code == 403
        assert (await focal_point.get(PAGE)).status_code == 403
        assert len(await recorded(admin, "outbox.replayed", "outbox:referrals")) == audited_before

        done = await admin.post(
            PAGE, data={"csrf_token": csrf, "since": since, "service": "referrals"}
        )
        assert done.status_code == 200, done.text
        assert f"{expected} événements publiés à nouveau au total." in done.text
        row = done.text.split('id="replay-counts"')[1].split("</table>")[0]
        assert "referrals" in row and f"<td>{expected}</td>" in row

        async def audited() -> bool:
            records = await recorded(admin, "outbox.replayed", "outbox:referrals")
            return len(records) == audited_before + 1

        await eventually(audited, within=30, what="the replay in sanad's audit log")

        await admin.get("/lang/ar", params={"next": PAGE})
        arabic = await admin.get(PAGE)
        assert arabic.status_code == 200 and "إعادة بثّ صندوق الصادر" in arabic.text
        await admin.get("/lang/en", params={"next": PAGE})
        english = await admin.post(
            f"{PAGE}/confirm", data={"csrf_token": csrf, "since": since, "service": "referrals"}
        )
        assert "Repeats are recognised" in english.text
    finally:
        await admin.aclose()
        await focal_point.aclose()
