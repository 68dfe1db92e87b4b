"""The hub's nats-server as the directory drives it: its accounts file, reloaded in place.

When the roster changes, the directory writes the accounts (shared/membership/accounts.py) and asks
the server to reload through its system account, without restarting it. A reload does not drop
the link of a user it removed, so the links of organisations that lost their user are kicked
(their retries then fail authorisation); and since one reload was once seen not to be enough
for a new account's imports, each admitted organisation's account is checked from the ``HUB``
account afterwards and the reload repeated until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError, ServiceUnavailableError

from shared.bus import Bus
from shared.federation import (
    DEFAULT_QUOTA,
    ROUTER,
    Member,
    Quota,
    SourceConsumer,
    account,
    account_api,
    hub_member_consumers,
    hub_member_streams,
    router_stream,
    to_consumer,
)

log = logging.getLogger(__name__)


class HubNatsError(RuntimeError):
    """The hub's nats-server did not take its new accounts."""


async def apply_accounts(
    text: str,
    *,
    accounts_file: Path,
    system_url: str,
    hub: Client,
    connected: Collection[str],
    cut: Collection[str],
    attempts: int = 4,
) -> bool:
    """Write ``text`` if it changed, reload, kick the leaf links of the orgs in ``cut``, and
    wait until each org in ``connected`` answers through the ``HUB`` account. Returns whether
    the file changed."""
    changed = await asyncio.to_thread(_write_if_changed, accounts_file, text)
    system = await nats.connect(system_url, name="relais-hub-directory", connect_timeout=2)
    try:
        servers = await _server_ids(system)
        if changed:
            # A new account's imports were once seen to take only at a second reload.
            await _reload(system, servers)
            await _reload(system, servers)
        await _kick(system, servers, {account(org) for org in cut})
        for attempt in range(attempts):
            missing = [org for org in connected if not await _answers(hub, org)]
            if not missing:
                break
            if attempt == attempts - 1:
                raise HubNatsError(f"accounts of {', '.join(missing)} not live after reloads")
            log.warning("hub nats: accounts of %s not live yet; reloading again", missing)
            await asyncio.sleep(0.2 * (attempt + 1))
            await _reload(system, servers)
    finally:
        await system.close()
    return changed


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)  # the server never reads half a file
    return True


async def _server_ids(system: Client, *, within: float = 0.5) -> list[str]:
    """Every server of the hub (one, or each of a cluster's): each answers the ping once.
    Each reads its own copy of the accounts file (a cluster on several machines needs the file
    copied to each: deploy/README.md)."""
    answers: list[str] = []
    inbox = system.new_inbox()

    async def collect(msg: Msg) -> None:
        answers.append(str(json.loads(msg.data)["server"]["id"]))

    subscription = await system.subscribe(inbox, cb=collect)
    try:
        await system.publish("$SYS.REQ.SERVER.PING.VARZ", b"", reply=inbox)
        await asyncio.sleep(within)  # answers come from each server; none says it is the last
    finally:
        await subscription.unsubscribe()
    if not answers:
        raise HubNatsError("no hub nats-server answered through the system account")
    return sorted(set(answers))


async def _reload(system: Client, servers: list[str]) -> None:
    for server_id in servers:
        reply = await system.request(f"$SYS.REQ.SERVER.{server_id}.RELOAD", b"", timeout=10)
        error = json.loads(reply.data).get("error")
        if error:
            raise HubNatsError(f"nats-server {server_id} refused its new configuration: {error}")
    log.info("hub nats: configuration reloaded on %d server(s)", len(servers))


async def _kick(system: Client, servers: list[str], accounts: set[str]) -> None:
    if not accounts:
        return
    for server_id in servers:
        reply = await system.request(f"$SYS.REQ.SERVER.{server_id}.LEAFZ", b"{}", timeout=5)
        for leaf in json.loads(reply.data).get("data", {}).get("leafs", []):
            if leaf.get("account") in accounts:
                request = json.dumps({"cid": leaf["id"]}).encode()
                await system.request(f"$SYS.REQ.SERVER.{server_id}.KICK", request, timeout=5)
                log.warning(
                    "hub nats: cut the leaf link of %s (%s): its credentials no longer hold",
                    leaf.get("account"),
                    leaf.get("name"),
                )


async def _answers(hub: Client, org: str) -> bool:
    try:
        await hub.request(f"{account_api(org)}.INFO", b"", timeout=1)
    except (NoRespondersError, NatsTimeout):
        return False
    return True


# What asking a retired organisation's account for its streams gives: nothing answers there.
_GONE = (NotFoundError, ServiceUnavailableError, NoRespondersError, NatsTimeout)


async def retire_members(orgs: Collection[str], bus: Bus) -> None:
    """Delete the hub's streams of organisations that left, and the consumer on ``ROUTER``
    that fed them, before their accounts leave the configuration: nats-server reports a
    JetStream account it holds assets for but cannot resolve as unhealthy. Nothing to do for
    an organisation already retired (its account answers no more)."""
    for org in orgs:
        js = bus.nc.jetstream(prefix=account_api(org), timeout=2)
        for stream in (f"TO_{org}", f"FROM_{org}"):
            with contextlib.suppress(*_GONE):
                if await js.delete_stream(stream):
                    log.warning("hub nats: %s left the network: its stream %s deleted", org, stream)
        with contextlib.suppress(*_GONE):
            await bus.js.delete_consumer(ROUTER, to_consumer(org))


async def declare_hub_streams(
    bus: Bus,
    own: Member,
    members: Sequence[Member],
    *,
    hub_domain: str,
    replicas: int = 1,
    quota: Quota = DEFAULT_QUOTA,
) -> None:
    """The hub's streams and source consumers, each after what it sources from: every
    ``FROM_`` (a member's in its account) and the consumer ``ROUTER`` names on it, then
    ``ROUTER``, then per member the consumer on ``ROUTER`` that its ``TO_`` names, the ``TO_``
    and the consumer on it that the member's ``INBOX`` names."""
    chosen = [own, *sorted(members, key=lambda m: m.org)]
    later: list[tuple[Member, StreamConfig, list[SourceConsumer]]] = []
    for member in chosen:
        api = None if member == own else account_api(member.org)
        origin, routed = hub_member_streams(
            member, hub_domain=hub_domain, replicas=replicas, quota=quota
        )
        await bus.ensure_stream(origin, api=api)
        before, after = ([], []) if member == own else hub_member_consumers(member)
        for consumer in before:
            await bus.ensure_consumer(consumer)
        later.append((member, routed, after))
    await bus.ensure_stream(
        router_stream([own, *members], hub_domain=hub_domain, replicas=replicas)
    )
    for member, routed, after in later:
        on_router = [c for c in after if c.stream == ROUTER]
        on_share = [c for c in after if c.stream != ROUTER]
        for consumer in on_router:
            await bus.ensure_consumer(consumer)
        await bus.ensure_stream(routed, api=None if member == own else account_api(member.org))
        for consumer in on_share:
            await bus.ensure_consumer(consumer)
