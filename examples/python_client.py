"""A member system over its node's NATS, in Python (nats-py): the whole loop between two
organisations, each system with its own credentials, and each one's event feed.

    python examples/python_client.py [credentials.json] [sender] [recipient]

The credentials are those ``relais demo`` writes (``.relais/demo/credentials.json``): for each
node, ``clients[0]`` holds the system's API token and NATS login (an nkey seed file, its inbox
prefix, its feed's stream and consumer). A real system gets the same from its node's admin
(``relais client create``). Only the node's ``/asyncapi.json`` and the README were needed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

FEED_WAIT = 60  # seconds: the other node's answer crosses the network through the hub


class System:
    """One organisation's system: its connection to its node, its token, its feed."""

    def __init__(self, name: str, creds: dict[str, Any]) -> None:
        self.name = name
        self.creds = creds
        self.nc: Client
        self.seen: set[str] = set()  # event ids: the feed delivers at least once
        self.changes: dict[str, set[str]] = {}  # what each referral's events said so far

    async def connect(self) -> None:
        login = self.creds["nats"]
        self.nc = await nats.connect(
            login["url"],
            nkeys_seed=login["nkey_seed_file"],  # the node knows only the public key
            inbox_prefix=login["inbox_prefix"].encode(),  # the only inbox it may read
            name=f"example {self.name}",
        )
        feed = login["feed"]
        self.feed = await self.nc.jetstream().pull_subscribe_bind(
            feed["consumer"], stream=feed["stream"]
        )

    async def ask(self, command: str, **body: Any) -> dict[str, Any]:
        """A command; its result, or its typed error raised."""
        body["token"] = self.creds["token"]
        reply = await self.nc.request(
            f"relais.cmd.referrals.{command}", json.dumps(body).encode(), timeout=10
        )
        answer: dict[str, Any] = json.loads(reply.data)
        if "error" in answer:
            raise RuntimeError(f"{command}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def wait_for(self, referral_id: str, *changes: str) -> None:
        """Read the feed (acknowledging each event) until this referral showed every one of
        ``changes``: the other node's steps may arrive in another order than they were made."""
        deadline = time.monotonic() + FEED_WAIT
        while time.monotonic() < deadline:
            if set(changes) <= self.changes.get(referral_id, set()):
                return
            try:
                messages = await self.feed.fetch(20, timeout=2)
            except TimeoutError:
                continue
            for msg in messages:
                event: dict[str, Any] = json.loads(msg.data)
                await msg.ack()
                if event["id"] in self.seen:
                    continue  # a redelivery
                self.seen.add(event["id"])
                data = event["data"]
                about = data["referral"]
                print(
                    f"  [{self.name} feed] {event['type']} {about['referral_id']}:"
                    f" {data.get('change', data.get('kind'))} (status {about['status']})"
                )
                if "change" in data:
                    self.changes.setdefault(about["referral_id"], set()).add(data["change"])
        raise TimeoutError(f"{self.name}: {referral_id} did not show all of {changes}")

    async def close(self) -> None:
        await self.nc.close()


async def main(nodes: dict[str, Any], sender_id: str, recipient_id: str) -> None:
    sender = System(sender_id, nodes[sender_id]["clients"][0])
    recipient = System(recipient_id, nodes[recipient_id]["clients"][0])
    await sender.connect()
    await recipient.connect()
    try:
        started = time.monotonic()
        made = await sender.ask(
            "create",
            to_org=recipient_id,
            category="primary_health",
            urgency="priority",
            legal_basis="consent",
            consent={},
            payload={"given_name": "Awa", "need_summary": "Fièvre depuis trois jours"},
            idempotency_key=str(uuid.uuid4()),  # a retried create returns the same referral
        )
        referral_id = made["referral_id"]
        print(f"{sender_id}: sent {referral_id} ({made['status']})")
        await sender.wait_for(referral_id, "sent")
        await recipient.wait_for(referral_id, "received")
        for action, extra in (
            ("accept", {}),
            ("start", {}),
            ("complete", {"reason": "service_provided"}),
        ):
            done = await recipient.ask("act", referral_id=referral_id, action=action, **extra)
            print(f"{recipient_id}: {action} -> {done['status']}")
        await sender.wait_for(referral_id, "received", "accepted", "in_progress", "completed")
        outcome = await sender.ask("get", referral_id=referral_id)
        print(f"{sender_id}: {referral_id} is {outcome['status']}")
        pages, total, after = 0, 0, None
        while True:
            page = await sender.ask(
                "list", box="outbox", limit=2, **({"after": after} if after else {})
            )
            pages, total = pages + 1, total + len(page["items"])
            after = page["next"]
            if after is None:
                break
        print(f"{sender_id}: outbox of {total} referrals in {pages} pages of 2")
        print(f"the loop took {time.monotonic() - started:.1f} s")
    finally:
        await sender.close()
        await recipient.close()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    where = Path(arguments[0] if arguments else ".relais/demo/credentials.json")
    asyncio.run(
        main(
            json.loads(where.read_text())["nodes"],
            arguments[1] if len(arguments) > 1 else "sanad",
            arguments[2] if len(arguments) > 2 else "amal",
        )
    )
