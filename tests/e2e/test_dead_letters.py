"""The operator's tools after a fault, on the real network and the real command line: a step
that sanad's referrals consumer refused is listed, redelivered once its cause is fixed (and
then applied, once), a forged record is discarded with a reason, and an outbox is replayed;
each action in the node's audit chain."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.demo import bring_up, credentials
from deploy.network import Network
from shared.bus import Bus
from shared.contracts.directory import (
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
)
from shared.events import CloudEvent, make_event
from tests.conftest import servers
from tests.e2e.conftest import client, relais, user
from tests.waiting import eventually

Creds = dict[str, Any]
TRANSITIONED = "relais.referral.transitioned.v1"
REFERRAL = {
    "to_org": "amal",
    "category": "primary_health",
    "urgency": "priority",
    "legal_basis": "consent",
    "consent": {},
    "payload": {"given_name": "Awa", "need_summary": "Consultation."},
}


def credentials_file(creds: Creds, tmp_path: Path) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(creds))
    return path


async def letters(path: Path, node: str) -> list[dict[str, Any]]:
    code, out = await relais("deadletters", "list", "--node", node, "--credentials", path, "--json")
    assert code == 0, out
    found: list[dict[str, Any]] = json.loads(out)
    return found


async def status_at(node: httpx.AsyncClient, referral_id: str) -> str | None:
    response = await node.get(f"/api/v1/referrals/{referral_id}")
    return str(response.json()["status"]) if response.status_code == 200 else None


# A network of their own: these tests make dead letters on purpose (a refused step, a forged
# record), which the suite's shared network must not show to the tests of a healthy one.
@pytest.fixture(scope="module")
async def network() -> AsyncIterator[Network]:
    async with servers("relais-letters-") as net:
        yield net


@pytest.fixture(scope="module")
async def running_network(network: Network) -> AsyncIterator[Creds]:
    users = await bring_up(network, {})
    yield credentials(network, users)


async def recorded(admin: httpx.AsyncClient, action: str, object: str) -> list[dict[str, Any]]:
    response = await admin.get("/api/v1/audit/records", params={"action": action})
    return [r for r in response.json()["items"] if r["object"] == object]


async def forge_a_record(network: Network, *, version: int) -> CloudEvent:
    """sanad's node publishes a directory record of amal's, which only the hub may: amal's
    directory refuses it (a dead letter there)."""
    forged = OrganisationPublished(
        org_id="amal",
        version=version,
        name=LocalisedText(fr="Usurpé"),
        kind=OrganisationKind.NGO,
        status=MembershipStatus.SUSPENDED,
        city="nulle_part",
    )
    event = make_event(forged, source="relais://sanad/directory", subject="amal")
    bus = await Bus.connect(network.plan("sanad").nats_url, org="sanad", name="forger")
    try:
        await bus.publish("relais.net.sanad.all.organisation.published", event)
    finally:
        await bus.close()
    return event


async def test_a_refused_step_is_redelivered_once_its_cause_is_fixed(
    running_network: Creds, tmp_path: Path
) -> None:
    path = credentials_file(running_network, tmp_path)
    sanad_db = await asyncpg.connect(running_network["nodes"]["sanad"]["database_url"])
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "sanad", "admin") as sanad_admin,
        client(running_network, "amal", "focal_point") as amal,
    ):
        created = await sanad.post("/api/v1/referrals", json=REFERRAL)
        assert created.status_code == 201, created.text
        referral_id = created.json()["referral_id"]

        async def received_at_sanad() -> bool:
            return await status_at(sanad, referral_id) == "received"

        await eventually(received_at_sanad, within=30, what="sanad learns it was received")
        before = {letter["id"] for letter in await letters(path, "sanad")}

        # The fault: sanad's copy no longer says amal is the other party, so amal's answer
        # is refused as coming from a stranger (terminated, never retried).
        await sanad_db.execute(
            "UPDATE referrals.referrals SET box = 'inbox' WHERE referral_id = $1", referral_id
        )
        try:
            accepted = await amal.post(f"/api/v1/referrals/{referral_id}/accept")
            assert accepted.status_code == 200, accepted.text

            async def parked() -> list[dict[str, Any]]:
                return [
                    letter
                    for letter in await letters(path, "sanad")
                    if letter["id"] not in before and referral_id in letter["reason"]
                ]

            async def is_parked() -> bool:
                return bool(await parked())

            await eventually(is_parked, within=30, what="sanad parks amal's answer")
            (letter,) = await parked()
            assert letter["consumer"] == "referrals" and letter["stream"] == "INBOX"
            assert letter["event_type"] == TRANSITIONED and letter["why"] == "terminated"
            assert letter["state"] == "open"

            code, out = await relais(
                "deadletters", "list", "--node", "sanad", "--credentials", path
            )
            assert code == 0, out
            line = next(r for r in out.splitlines()[1:] if r.split()[:1] == [str(letter["id"])])
            assert "referrals" in line and TRANSITIONED in line and "open" in line
            assert "Africa/Casablanca" in out
            assert "Awa" not in out  # ids and types only

            # Redelivered before the cause is fixed: refused again, the attempt counted.
            code, out = await relais(
                "deadletters", "redeliver", str(letter["id"]), "--node", "sanad",
                "--credentials", path,
            )  # fmt: skip
            assert code == 1, out
            assert "failed again" in out and "not the other party" in out
            assert await status_at(sanad, referral_id) == "received"
        finally:
            await sanad_db.execute(
                "UPDATE referrals.referrals SET box = 'outbox' WHERE referral_id = $1", referral_id
            )
            await sanad_db.close()

        code, out = await relais(
            "deadletters", "show", str(letter["id"]), "--node", "sanad", "--credentials", path
        )
        assert code == 0, out
        assert "redeliveries tried  1" in out and "not the other party" in out

        # The cause fixed, the same message is handed to the same handler: the step applies.
        code, out = await relais(
            "deadletters", "redeliver", str(letter["id"]), "--node", "sanad", "--credentials", path
        )
        assert code == 0, out
        assert f"Dead letter {letter['id']} redelivered" in out
        assert await status_at(sanad, referral_id) == "accepted"
        history = (await sanad.get(f"/api/v1/referrals/{referral_id}")).json()["history"]
        assert [h["change"] for h in history].count("accepted") == 1

        # Once only: a second redelivery, or a discard, is refused (409) and changes nothing.
        for action in (("redeliver",), ("discard", "--reason", "late")):
            code, out = await relais(
                "deadletters", action[0], str(letter["id"]), *action[1:], "--node", "sanad",
                "--credentials", path,
            )  # fmt: skip
            assert code == 1, out
            assert "(409)" in out and "redelivered" in out
        (after,) = [item for item in await letters(path, "sanad") if item["id"] == letter["id"]]
        assert after["state"] == "redelivered" and after["attempts"] == 2
        assert after["handled_by"].startswith("user:")

        object = f"dead-letter:{letter['id']}"

        async def both_audited() -> bool:
            return len(await recorded(sanad_admin, "dead_letter.redelivered", object)) == 2

        await eventually(both_audited, within=30, what="both redeliveries in sanad's audit log")
        outcomes = [
            r["outcome"] for r in await recorded(sanad_admin, "dead_letter.redelivered", object)
        ]
        assert sorted(outcomes) == ["failed", "ok"]


async def test_a_forged_record_is_discarded_with_a_reason(
    running_network: Creds, network: Network, tmp_path: Path
) -> None:
    path = credentials_file(running_network, tmp_path)
    event = await forge_a_record(network, version=998)

    async def parked() -> bool:
        return any(letter["event_id"] == event.id for letter in await letters(path, "amal"))

    await eventually(parked, within=30, what="amal parks the forged record")
    letter = next(item for item in await letters(path, "amal") if item["event_id"] == event.id)
    number = str(letter["id"])

    code, out = await relais(
        "deadletters", "discard", number, "--reason", "forged by sanad, reported",
        "--node", "amal", "--credentials", path,
    )  # fmt: skip
    assert code == 0, out
    assert f"Dead letter {number} discarded." in out
    code, out = await relais("deadletters", "show", number, "--node", "amal", "--credentials", path)
    assert code == 0, out
    assert "discarded" in out and "forged by sanad, reported" in out

    for action in (("discard", "--reason", "again"), ("redeliver",)):
        code, out = await relais(
            "deadletters", action[0], number, *action[1:], "--node", "amal", "--credentials", path
        )
        assert code == 1, out
        assert "(409)" in out and "discarded" in out

    async with (
        client(running_network, "amal", "admin") as admin,
        client(running_network, "amal", "focal_point") as focal_point,
    ):
        unknown = await admin.get("/api/v1/node/dead-letters/999999999")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/problem+json")
        again = await admin.post(
            f"/api/v1/node/dead-letters/{number}/discard", json={"reason": "x"}
        )
        assert again.status_code == 409 and again.json()["type"] == "/problems/conflict"
        empty = await admin.post(
            f"/api/v1/node/dead-letters/{number}/discard", json={"reason": " "}
        )
        assert empty.status_code == 422 and empty.json()["field"] == "reason"
        for method, where in (
            ("GET", "/api/v1/node/dead-letters"),
            ("GET", f"/api/v1/node/dead-letters/{number}"),
            ("POST", f"/api/v1/node/dead-letters/{number}/redeliver"),
            ("POST", "/api/v1/node/outbox/replay"),
        ):
            refused = await focal_point.request(method, where, json={"since": "1"})
            assert refused.status_code == 403, (where, refused.text)
        record = (await admin.get("/api/v1/directory/organisations/amal")).json()
        assert record["version"] < 998

        async def audited() -> bool:
            return bool(await recorded(admin, "dead_letter.discarded", f"dead-letter:{number}"))

        await eventually(audited, within=30, what="the discard in amal's audit log")


async def test_an_outbox_replay_publishes_again_and_changes_nothing_downstream(
    running_network: Creds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = credentials_file(running_network, tmp_path)
    async with client(running_network, "sanad", "caseworker") as sanad:
        created = await sanad.post("/api/v1/referrals", json=REFERRAL)
        assert created.status_code == 201, created.text
        referral_id = created.json()["referral_id"]

        async def settled() -> bool:  # the last row this referral writes at sanad
            return await status_at(sanad, referral_id) == "received"

        await eventually(settled, within=30, what="sanad learns it was received")
    sanad_db = await asyncpg.connect(running_network["nodes"]["sanad"]["database_url"])
    try:
        start = await sanad_db.fetchval("SELECT now() - interval '10 minutes'")
        expected = await sanad_db.fetchval(
            "SELECT count(*) FROM referrals.outbox WHERE created_at >= $1", start
        )
        first = await sanad_db.fetchval(
            "SELECT min(seq) FROM referrals.outbox WHERE created_at >= $1", start
        )
    finally:
        await sanad_db.close()
    async with client(running_network, "amal", "focal_point") as amal:
        inbox_before = (
            await amal.get("/api/v1/referrals", params={"box": "inbox", "limit": 100})
        ).json()

    # As on a real node: its address and an administrator's token from the environment.
    monkeypatch.setenv("RELAIS_URL", running_network["nodes"]["sanad"]["url"])
    monkeypatch.setenv("RELAIS_TOKEN", user(running_network, "sanad", "admin")["token"])
    since = start.isoformat()
    code, out = await relais("outbox", "replay", "--since", since, "--service", "referrals")
    assert code == 0, out
    assert f"referrals: {expected} events published again (from outbox sequence {first})" in out

    code, out = await relais(
        "outbox", "replay", "--since", str(first), "--node", "sanad", "--credentials", path
    )
    assert code == 1 and "name the service" in out, out

    async with (
        client(running_network, "amal", "focal_point") as amal,
        client(running_network, "sanad", "admin") as sanad_admin,
    ):

        async def audited() -> bool:
            return bool(await recorded(sanad_admin, "outbox.replayed", "outbox:referrals"))

        await eventually(audited, within=30, what="the replay in sanad's audit log")
        inbox_after = (
            await amal.get("/api/v1/referrals", params={"box": "inbox", "limit": 100})
        ).json()
    # Nothing arrived twice: the same referrals, in the same states.
    assert {(r["referral_id"], r["status"]) for r in inbox_after["items"]} >= {
        (r["referral_id"], r["status"]) for r in inbox_before["items"]
    }
    assert len(inbox_after["items"]) == len({r["referral_id"] for r in inbox_after["items"]})


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def logged_in(creds: Creds, node: str, role: str) -> httpx.AsyncClient:
    """A browser-like client with a session on ``node``'s pages (French, the default)."""
    account = user(creds, node, role)
    browser = httpx.AsyncClient(base_url=creds["nodes"][node]["url"], timeout=30)
    form = await browser.get("/login")
    token = CSRF.search(form.text)
    assert token is not None, form.text
    done = await browser.post(
        "/login",
        data={
            "username": account["username"],
            "password": account["password"],
            "csrf_token": token.group(1),
        },
    )
    assert done.status_code == 303, done.text
    return browser


async def test_an_administrator_handles_dead_letters_on_the_admin_page(
    running_network: Creds, network: Network, tmp_path: Path
) -> None:
    path = credentials_file(running_network, tmp_path)
    event = await forge_a_record(network, version=997)

    async def parked() -> bool:
        return any(letter["event_id"] == event.id for letter in await letters(path, "amal"))

    await eventually(parked, within=30, what="amal parks the forged record")
    letter = next(item for item in await letters(path, "amal") if item["event_id"] == event.id)
    number = letter["id"]
    admin = await logged_in(running_network, "amal", "admin")
    focal_point = await logged_in(running_network, "amal", "focal_point")
    try:
        page = await admin.get("/admin/dead-letters")
        assert page.status_code == 200
        row = page.text.split(f'id="letter-{number}"')[1].split("</tr>")[0]
        assert event.type in row
        assert event.id in row and "À traiter" in row and "Refusée par le service" in row
        assert "Usurpé" not in page.text  # never the content
        assert '<a href="/admin/dead-letters"' in page.text  # in the administrator's menu
        found = CSRF.search(page.text)
        assert found is not None
        csrf = found.group(1)

        # Redelivered while still forged: the consumer refuses it again, and says so.
        again = await admin.post(
            f"/admin/dead-letters/{number}/redeliver", data={"csrf_token": csrf}
        )
        assert again.status_code == 409
        assert "Le service destinataire a de nouveau échoué" in again.text
        assert "come from the hub" in again.text

        empty = await admin.post(
            f"/admin/dead-letters/{number}/discard", data={"csrf_token": csrf, "reason": " "}
        )
        assert empty.status_code == 422 and "Dites pourquoi" in empty.text
        forged_form = await admin.post(
            f"/admin/dead-letters/{number}/discard", data={"reason": "sans jeton"}
        )
        assert forged_form.status_code == 403

        discarded = await admin.post(
            f"/admin/dead-letters/{number}/discard",
            data={"csrf_token": csrf, "reason": "faux enregistrement, signalé"},
        )
        assert discarded.status_code == 303
        shown = await admin.get(discarded.headers["location"])
        assert "La lettre morte est mise de côté." in shown.text
        row = shown.text.split(f'id="letter-{number}"')[1].split("</tr>")[0]
        assert "Mise de côté" in row and "faux enregistrement, signalé" in row
        assert f"/admin/dead-letters/{number}/redeliver" not in row  # nothing left to do

        assert (await focal_point.get("/admin/dead-letters")).status_code == 403
        await admin.get("/lang/ar", params={"next": "/admin/dead-letters"})
        arabic = await admin.get("/admin/dead-letters")
        assert arabic.status_code == 200 and "الرسائل الميتة" in arabic.text
        assert "منحّاة" in arabic.text
    finally:
        await admin.aclose()
        await focal_point.aclose()


async def test_an_administrator_logs_in_with_a_password_on_the_command_line(
    running_network: Creds,
) -> None:
    admin = user(running_network, "amal", "admin")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.cli", "deadletters", "list",
        "--url", running_network["nodes"]["amal"]["url"], "--user", admin["username"],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "RELAIS_LANG": "fr"},
    )  # fmt: skip
    out, _ = await process.communicate(f"{admin['password']}\n".encode())
    assert process.returncode == 0, out.decode()
    assert "Lettres mortes :" in out.decode()

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.cli", "deadletters", "list",
        "--url", running_network["nodes"]["amal"]["url"], "--user", admin["username"],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "RELAIS_LANG": "en"},
    )  # fmt: skip
    out, _ = await process.communicate(b"not the password\n")
    assert process.returncode == 1, out.decode()
    assert "wrong username or password" in out.decode()
