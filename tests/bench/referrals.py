"""Referrals end to end: sanad's node sends sealed referrals to amal's node through the hub.

On a network of its own (real servers and real node processes, seeded like the demo):
- sustained: ``--referrals`` referrals posted by ``--posters`` concurrent HTTP clients at
  sanad as fast as it takes them; the rate at which amal's node marks them ``received``;
- fixed load: ``--rate`` referrals a second for ``--seconds``; the time from the POST to
  amal's ``received`` (its ``relais.local.referrals.changed`` event, seen on amal's NATS).
``received`` means amal's node verified the signature against the directory, decrypted the
payload, checked it against the category's form and wrote it, with its history, alarms,
audit record and the reply to sanad, in one transaction.

Notifications ride along: the nodes send their mail to a real SMTP server (aiosmtpd) in this
process, and each received referral tells amal's focal point by mail. Measured: mails
accepted by the SMTP server per second, and the time from amal's ``received`` to the mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from aiosmtpd.controller import Controller
from nats.aio.msg import Msg

from deploy.demo import bring_up, credentials, seed_contacts
from deploy.network import on_free_ports
from deploy.ports import free_ports
from shared.settings import DEMO_SECRET
from tests.bench.measure import percentile

Say = Callable[[str], None]
BODY = {
    "to_org": "amal",
    "category": "primary_health",
    "urgency": "priority",
    "legal_basis": "consent",
    "consent": {},
    "payload": {
        "given_name": "Bench",
        "need_summary": "Consultation de médecine générale (banc d'essai).",
        "languages": "fra",
    },
}


@dataclass
class Receipts:
    """When amal's node marked each referral received, by referral id (monotonic seconds)."""

    at: dict[str, float] = field(default_factory=dict)
    more: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_message(self, msg: Msg) -> None:
        event = json.loads(msg.data)
        if event["data"]["change"] == "received":
            self.at.setdefault(event["subject"], time.monotonic())
            self.more.set()

    async def all_of(self, sent: dict[str, float], limit: float) -> None:
        """Wait until every one of ``sent`` was received, or ``limit`` seconds passed."""
        deadline = time.monotonic() + limit
        while any(r not in self.at for r in sent) and time.monotonic() < deadline:
            self.more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.more.wait(), deadline - time.monotonic())


@dataclass
class Mailbox:
    """An SMTP server's handler: when a mail about each referral was accepted. aiosmtpd runs
    it on its own thread, hence a thread's event."""

    at: dict[str, float] = field(default_factory=dict)
    more: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("plain",))
        found = REFERRAL_LINK.search(body.get_content() if body is not None else "")
        if found:
            self.at.setdefault(found[1], time.monotonic())
            self.more.set()
        return "250 OK"


REFERRAL_LINK = re.compile(r"/referrals/([0-9a-f-]{36})")


@asynccontextmanager
async def _nodes(say: Say, mailbox: Mailbox) -> AsyncIterator[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="relais-bench-ref-"))
    net = on_free_ports(root, ("sanad", "amal"), hub_org="secretariat", secret_key=DEMO_SECRET)
    (port,) = free_ports(1)
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    net.extra_env.update({"RELAIS_SMTP_HOST": "127.0.0.1", "RELAIS_SMTP_PORT": str(port)})
    try:
        started = time.monotonic()
        await net.start_servers()
        users = await bring_up(net, {})
        creds = credentials(net, users)
        await seed_contacts(creds)
        say(f"referrals: hub, sanad and amal nodes up in {time.monotonic() - started:.1f}s")
        yield creds
    finally:
        await net.stop()
        smtp.stop()
        shutil.rmtree(root, ignore_errors=True)


def _token(creds: dict[str, Any], node: str, role: str) -> str:
    return str(next(u["token"] for u in creds["nodes"][node]["users"] if u["role"] == role))


async def _post(sanad: httpx.AsyncClient, sent: dict[str, float]) -> None:
    posted = time.monotonic()
    response = await sanad.post("/api/v1/referrals", json=BODY)
    if response.status_code != 201:
        raise RuntimeError(f"sanad answered {response.status_code}: {response.text[:200]}")
    sent[response.json()["referral_id"]] = posted


async def _sustained(
    sanad: httpx.AsyncClient, receipts: Receipts, count: int, posters: int, limit: float
) -> dict[str, Any]:
    sent: dict[str, float] = {}
    queue = iter(range(count))

    async def poster() -> None:
        for _ in queue:
            await _post(sanad, sent)

    started = time.monotonic()
    await asyncio.gather(*(poster() for _ in range(posters)))
    posted_s = time.monotonic() - started
    await receipts.all_of(sent, limit)
    missing = [r for r in sent if r not in receipts.at]
    if missing:
        raise RuntimeError(f"{len(missing)}/{count} referrals not received within {limit:.0f}s")
    last = max(receipts.at[r] for r in sent)
    wall = last - started
    return {
        "referrals": count,
        "posters": posters,
        "posted_per_s": round(count / posted_s, 1),
        "received_per_s": round(count / wall, 1),
        "wall_s": round(wall, 2),
    }


async def _fixed_load(
    sanad: httpx.AsyncClient, receipts: Receipts, rate: float, seconds: float, limit: float
) -> dict[str, Any]:
    sent: dict[str, float] = {}
    count = int(rate * seconds)
    started = time.monotonic()
    tasks = []
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_post(sanad, sent)))
    await asyncio.gather(*tasks)
    await receipts.all_of(sent, limit)
    latencies = sorted((receipts.at[r] - sent[r]) * 1000 for r in sent if r in receipts.at)
    if len(latencies) < count:
        raise RuntimeError(f"only {len(latencies)}/{count} received within {limit:.0f}s")
    return {
        "offered_per_s": rate,
        "referrals": count,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1),
    }


async def run(
    say: Say, *, count: int, posters: int, rate: float, seconds: float, limit: float
) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "referrals"}
    mailbox = Mailbox()
    try:
        async with _nodes(say, mailbox) as creds:
            receipts = Receipts()
            nc = await nats.connect(creds["nodes"]["amal"]["nats_url"])
            await nc.subscribe("relais.local.referrals.changed", cb=receipts.on_message)
            headers = {"Authorization": f"Bearer {_token(creds, 'sanad', 'caseworker')}"}
            async with httpx.AsyncClient(
                base_url=creds["nodes"]["sanad"]["url"], headers=headers, timeout=60
            ) as sanad:
                await _post(sanad, {})  # warm up: the first referral opens every path
                say(f"referrals: sustained, {count} referrals from {posters} clients")
                result["sustained"] = await _sustained(sanad, receipts, count, posters, limit)
                say(f"referrals: fixed load, {rate}/s for {seconds:.0f}s")
                result["fixed_load"] = await _fixed_load(sanad, receipts, rate, seconds, limit)
            result["notifications"] = await _mails(receipts, mailbox, limit)
            await nc.close()
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


async def _mails(receipts: Receipts, mailbox: Mailbox, limit: float) -> dict[str, Any]:
    """Each received referral's mail to amal's focal point, once they have all come."""
    deadline = time.monotonic() + limit
    while any(r not in mailbox.at for r in receipts.at) and time.monotonic() < deadline:
        mailbox.more.clear()
        await asyncio.to_thread(mailbox.more.wait, min(1.0, deadline - time.monotonic()))
    latencies = sorted(
        (mailbox.at[r] - received) * 1000 for r, received in receipts.at.items() if r in mailbox.at
    )
    if len(latencies) < len(receipts.at):
        raise RuntimeError(f"only {len(latencies)}/{len(receipts.at)} mails within {limit:.0f}s")
    times = sorted(mailbox.at.values())
    return {
        "mails": len(times),
        "mails_per_s": round(len(times) / (times[-1] - min(receipts.at.values())), 1),
        "received_to_mail_p50_ms": round(percentile(latencies, 50), 1),
        "received_to_mail_p99_ms": round(percentile(latencies, 99), 1),
    }


def table(result: dict[str, Any], raw_per_s: float | None) -> str:
    if "error" in result:
        return f"referrals sanad → amal  FAILED: {result['error']}"
    sustained, fixed, mails = result["sustained"], result["fixed_load"], result["notifications"]
    ratio = (
        f"{sustained['received_per_s'] / raw_per_s:.2f} of the raw pipeline (A)"
        if raw_per_s
        else "no raw pipeline figure in this run"
    )
    return "\n".join(
        [
            "referrals sanad → amal (create → received at the recipient's node)",
            f"  sustained   {sustained['referrals']} referrals, {sustained['posters']} clients:"
            f" {sustained['received_per_s']}/s received ({sustained['posted_per_s']}/s"
            f" accepted by the API), {ratio}",
            f"  fixed load  {fixed['offered_per_s']}/s, {fixed['referrals']} referrals:"
            f" p50 {fixed['p50_ms']} ms, p99 {fixed['p99_ms']} ms, max {fixed['max_ms']} ms",
            f"  mails       {mails['mails']} to amal's focal point: {mails['mails_per_s']}/s,"
            f" received → accepted by SMTP p50 {mails['received_to_mail_p50_ms']} ms,"
            f" p99 {mails['received_to_mail_p99_ms']} ms",
        ]
    )
