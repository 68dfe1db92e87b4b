"""A leaf's link to the hub through a TCP relay that can be cut: the leaf's nats-server dials
the relay, the relay dials the hub's leaf port. Cutting resets every connection and refuses new
ones until healed, as a router that drops the line would; the leaf reconnects by itself
afterwards (``reconnect: "1s"`` in its configuration). TLS passes through untouched."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)
CHUNK = 64 * 1024


class LinkRelay:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``; ``cut`` and ``heal`` the line."""

    def __init__(self, name: str, port: int, target: int) -> None:
        self.name, self.port, self.target = name, port, target
        self.cut_now = False
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def cut(self) -> int:
        """Reset every open connection and refuse new ones; how many were open."""
        self.cut_now = True
        pairs, self._pairs = self._pairs, set()
        for near, far in pairs:
            _reset(near)
            _reset(far)
        return len(pairs)

    def heal(self) -> None:
        self.cut_now = False

    async def _accept(self, near_r: asyncio.StreamReader, near_w: asyncio.StreamWriter) -> None:
        if self.cut_now:
            _reset(near_w)
            return
        try:
            far_r, far_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:  # the hub's server is down: the leaf will dial again
            _reset(near_w)
            return
        pair = (near_w, far_w)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pipe(near_r, far_w), _pipe(far_r, near_w))
        finally:
            self._pairs.discard(pair)
            _reset(near_w)
            _reset(far_w)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    # One side ended: end the other, so both directions stop together.
    _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    if not writer.transport.is_closing():
        writer.transport.abort()
