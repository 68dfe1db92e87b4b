"""A new ``INBOX`` reads everything the hub still holds for the node, not only what comes next.

A member's ``INBOX`` sources the hub's ``TO_<org>`` through a durable consumer the hub owns
(``shared/federation.py``). When a node's JetStream store is new (a restore, or a store lost
with its disk), that consumer is still where the lost ``INBOX`` left it: what the hub had
delivered to the lost store, a referral received after the last backup, never came again (seen
in ``tests/e2e/test_backup_restore.py``, which passed only when the old store had not yet
acknowledged it). The hub keeps ``TO_<org>`` for 30 days, so the node moves the consumer back
to the start (the consumer reset of nats-server 2.14, which the hub lets a member's leaf send
for this one consumer) before its ``INBOX`` sources anything: a stream that has sourced a
message skips anything older it is sent afterwards. What the restored database has already
handled is recognised and skipped by each consumer, as every redelivery is.

So a new ``INBOX`` is made without its source; a background task rewinds the hub's consumer,
waiting as long as the hub cannot be reached (a node started before it is admitted, a link
down), then gives the ``INBOX`` its source. A node restarted meanwhile finds an ``INBOX``
without a source and does the same.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from dataclasses import replace

from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from shared.bus import Bus
from shared.federation import INBOX, inbox_reset_subject

log = logging.getLogger(__name__)
PAUSES = (0.5, 1.0, 2.0, 5.0)  # between tries while the hub cannot be reached (the last repeats)


class ResetRefused(Exception):
    """The hub answered the reset with an error."""


async def needs_rewind(bus: Bus) -> bool:
    """Whether this node's ``INBOX`` is new (absent, or made here without its source yet)."""
    try:
        info = await bus.js.stream_info(INBOX)
    except NotFoundError:
        return True
    return not info.config.sources


async def start(bus: Bus, inbox: StreamConfig, *, org: str, hub_domain: str) -> None:
    """Make ``inbox`` without its source and rewind in the background (``rewind``)."""
    await bus.ensure_stream(replace(inbox, sources=None))
    bus.supervisor.start("inbox rewind", lambda: rewind(bus, inbox, org=org, hub_domain=hub_domain))


async def rewind(bus: Bus, inbox: StreamConfig, *, org: str, hub_domain: str) -> None:
    """Move the hub's consumer of ``TO_<org>`` back to its first message, then source it."""
    subject = inbox_reset_subject(org, hub_domain)
    for tries in itertools.count():
        try:
            await _reset(bus, subject)
            break
        except (TimeoutError, ResetRefused) as exc:
            if tries == 0:
                log.warning("inbox: the hub's copy for this node waits to be read again (%s)", exc)
            await asyncio.sleep(PAUSES[min(tries, len(PAUSES) - 1)])
    await bus.ensure_stream(inbox)
    log.info("inbox: reading again everything the hub holds for this node")


async def _reset(bus: Bus, subject: str) -> None:
    # The hub's leaf permissions allow replies only on ``$JSC.R.>``, where nats-server's own
    # source requests get theirs: the request's reply subject is one of those.
    reply = f"$JSC.R.{secrets.token_hex(12)}"
    sub = await bus.nc.subscribe(reply, max_msgs=1)
    try:
        await bus.nc.publish(subject, json.dumps({"seq": 1}).encode(), reply=reply)
        try:
            answer = json.loads((await sub.next_msg(timeout=5)).data)
        except Exception as exc:  # no answer in time, or a "no responders" status (no link)
            raise TimeoutError("the hub did not answer") from exc
    finally:
        await sub.unsubscribe()
    if "error" in answer:
        raise ResetRefused(str(answer["error"].get("description", answer["error"])))
