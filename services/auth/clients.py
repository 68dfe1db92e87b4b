"""Member-system clients: an API token and a NATS nkey user each, and the node keeping its
nats-server and its feed consumers in step with them.

An administrator creates a client (``relais client create``, ``POST /api/v1/auth/clients``):
the node stores its token's digest and its nkey's public half, and hands out the token and
the nkey seed once. The node process listens for changes of ``auth.clients`` (the CLI writes
the database directly), rewrites its nats-server's users file (``shared.nats_users``), reloads
the server, and creates or deletes each client's feed consumer (``shared.feed``); a revoked
client's connections end with the reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import nats.errors
import nkeys
from nats.js.errors import NotFoundError

from shared import feed, nats_users
from shared.auth import domain, store
from shared.auth.roles import Role
from shared.bus import Bus
from shared.db import Pool
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.settings import NodeSettings

log = logging.getLogger(__name__)

CHANNEL = "relais_auth_clients"
RECHECK_SECONDS = 60  # a notification missed (the LISTEN connection lost) is caught up then


@dataclass(frozen=True)
class Client:
    name: str
    token_id: str
    org: str
    roles: frozenset[str]
    nkey: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = None  # its token's last use (HTTP or NATS), to the minute

    @property
    def inbox_prefix(self) -> str:
        return nats_users.inbox_prefix(self.name)


@dataclass(frozen=True)
class CreatedClient:
    client: Client
    token: str  # the API token's secret, shown once
    nkey_seed: str  # the NATS nkey's seed (SU…), shown once


class NoClientsOnTheHub(Forbidden):
    """Member-system clients are made on a member organisation's node, never on the hub.

    The hub's nats-server is the network's (one account per organisation, joined by exports
    the directory writes): a client there would sit beside the network's routing, and it would
    have nothing to do. The NATS commands act for an organisation on its own cases with a
    case worker's or focal point's token, and the hub's accounts are coordinators, auditors
    and administrators, who hold no case; the directory the secretariat's software reads is
    the HTTP API's, with an API token (``relais token create``)."""

    type = "no-clients-on-hub"
    title = "No member-system clients on the hub"

    def __init__(self) -> None:
        super().__init__(
            "the hub has no member-system clients: make them on the member organisation's own "
            "node; the secretariat's software uses the HTTP API with an API token"
        )


def check_name(name: str) -> str:
    if not feed.CLIENT_NAME.match(name):
        raise Invalid(
            "a client's name has 2 to 31 lower-case letters, digits or _, starting with a letter",
            field="name",
        )
    return name


_COLUMNS = (
    "c.name, c.token_id, t.org, t.roles, c.nkey, c.created_by, c.created_at, c.revoked_at,"
    " t.last_used_at"
)


def _client(row: asyncpg.Record) -> Client:
    return Client(
        name=row["name"],
        token_id=str(row["token_id"]),
        org=row["org"],
        roles=frozenset(row["roles"]),
        nkey=row["nkey"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


async def create(
    pool: Pool,
    name: str,
    org: str,
    roles: Iterable[Role | str],
    created_by: str,
    *,
    on_hub: bool,
) -> CreatedClient:
    """A new client with its token and nkey; ``Conflict`` if the name was ever used,
    ``NoClientsOnTheHub`` on the hub."""
    if on_hub:
        raise NoClientsOnTheHub
    check_name(name)
    try:
        chosen = domain.check_api_token_roles(roles)
    except Invalid as refused:  # a client's roles are its scopes, as the CLI and API name them
        raise Invalid(refused.detail, field="scopes") from None
    if await get(pool, name) is not None:
        raise Conflict("a client of this name exists (a revoked one keeps its name)", field="name")
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = bytes(nkeys.from_seed(bytearray(seed)).public_key).decode()
    token_id, secret = await store.create_api_token(pool, f"client {name}", org, chosen, created_by)
    try:
        await pool.execute(
            "INSERT INTO auth.clients (name, token_id, nkey, created_by) VALUES ($1, $2, $3, $4)",
            name,
            token_id,
            public,
            created_by,
        )
    except asyncpg.UniqueViolationError:
        await store.revoke_token(pool, token_id)  # nothing half-made stays usable
        raise Conflict("a client of this name exists", field="name") from None
    client = await get(pool, name)
    assert client is not None
    log.info("member-system client %s created for org %s", name, org)
    return CreatedClient(client=client, token=secret, nkey_seed=seed.decode())


async def get(pool: Pool, name: str) -> Client | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM auth.clients c JOIN auth.tokens t ON t.id = c.token_id"
        " WHERE c.name = $1",
        name,
    )
    return None if row is None else _client(row)


async def list_all(pool: Pool) -> list[Client]:
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM auth.clients c JOIN auth.tokens t ON t.id = c.token_id"
        " ORDER BY c.created_at, c.name"
    )
    return [_client(row) for row in rows]


async def revoke(pool: Pool, name: str) -> Client:
    """Revoke a client and its token (revoking twice is harmless); ``NotFound`` if none."""
    async with pool.acquire() as conn, conn.transaction():
        token_id = await conn.fetchval(
            "UPDATE auth.clients SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1"
            " RETURNING token_id",
            name,
        )
        if token_id is None:
            raise NotFound("no such client", field="name")
        await conn.execute(
            "UPDATE auth.tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
            token_id,
        )
    client = await get(pool, name)
    assert client is not None
    log.info("member-system client %s revoked", name)
    return client


async def backlogs(bus: Bus, names: Iterable[str]) -> dict[str, int | None]:
    """What waits in each client's feed: events not yet delivered, or delivered and not yet
    acknowledged; ``None`` where the node's nats-server did not say (away, or no consumer)."""
    found: dict[str, int | None] = {}
    for name in names:
        try:
            info = await bus.js.consumer_info(feed.FEED, name, timeout=2)
        except (TimeoutError, nats.errors.Error):
            found[name] = None
            continue
        found[name] = (info.num_pending or 0) + (info.num_ack_pending or 0)
    return found


# -- the node's side -----------------------------------------------------------------------


async def apply(pool: Pool, bus: Bus, settings: NodeSettings) -> None:
    """Bring the nats-server's users and the feed consumers in step with the database."""
    active = [c for c in await list_all(pool) if c.revoked_at is None]
    if settings.nats_users_file is not None and settings.nats_system_url is not None:
        user, password = nats_users.services_login(settings.nats_url)
        text = nats_users.render(
            user, password, [nats_users.ClientUser(c.name, c.nkey) for c in active]
        )
        if nats_users.write_if_changed(settings.nats_users_file, text):
            await nats_users.reload(settings.nats_system_url)
    await bus.ensure_stream(feed.stream())
    wanted = {c.name for c in active}
    for name in wanted:
        await bus.js.add_consumer(feed.FEED, feed.consumer(name))
    for info in await bus.js.consumers_info(feed.FEED):
        name = info.name
        if name not in wanted:
            with contextlib.suppress(NotFoundError):
                await bus.js.delete_consumer(feed.FEED, name)
            log.info("feed consumer of revoked client %s deleted", name)


async def keep_in_step(pool: Pool, bus: Bus, settings: NodeSettings) -> None:
    """Apply at start, then at every change of ``auth.clients`` (and every minute)."""
    changed = asyncio.Event()
    listener: asyncpg.Connection | None = None
    try:
        while True:
            if listener is None or listener.is_closed():
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    listener = await asyncpg.connect(settings.database_url)
                    await listener.add_listener(CHANNEL, lambda *_: changed.set())
            changed.clear()
            try:
                await apply(pool, bus, settings)
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                nats_users.NatsUsersError,
                nats.errors.Error,
            ) as exc:
                log.warning("member-system clients not applied yet (%s); retrying", exc)
                await asyncio.sleep(2)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), RECHECK_SECONDS)
    finally:
        if listener is not None and not listener.is_closed():
            await listener.close()
