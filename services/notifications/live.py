"""Live updates: one LISTEN connection per process turns PostgreSQL notifications into wake-ups
for the feed's server-sent-event streams (per user) and for the delivery worker.

PostgreSQL rather than memory: the consumer that writes a notification and the request that
streams it may run in different processes (``relais serve notifications`` beside a node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import asyncpg

from services.notifications.store import FEED_CHANNEL, WORK_CHANNEL
from shared.db import Connection

log = logging.getLogger(__name__)


class Live:
    def __init__(self) -> None:
        self._streams: dict[str, set[asyncio.Event]] = {}
        self.work = asyncio.Event()
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def watch(self, username: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``username`` gets a new notification or reads some."""
        event = asyncio.Event()
        self._streams.setdefault(username, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._streams.get(username, set())
            watchers.discard(event)
            if not watchers:
                self._streams.pop(username, None)

    def _feed(self, _conn: object, _pid: int, _channel: str, username: object) -> None:
        for event in self._streams.get(str(username), ()):
            event.set()

    def _work(self, *_: object) -> None:
        self.work.set()

    async def run(self, dsn: str) -> None:
        """Listen until cancelled, reconnecting after a database outage (waking everyone then,
        since a notification may have been missed)."""
        while True:
            conn: Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(dsn)
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(FEED_CHANNEL, self._feed)
                await conn.add_listener(WORK_CHANNEL, self._work)
                self.listening.set()
                for watchers in self._streams.values():
                    for event in watchers:
                        event.set()
                self.work.set()
                await lost.wait()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("notifications: LISTEN failed (%s); retrying", exc)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(1)
