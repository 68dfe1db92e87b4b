"""A member's line to the hub that goes silent when the member's machine goes, as a power cut
does: the member's nats-server dials this relay, the relay dials the hub's leaf port, and when
the member's end of a connection ends (its process killed) the hub's end is neither closed nor
reset, nor read any more. The hub keeps the link until nats-server finds it stale by its pings,
as it does for a machine that vanished from the internet. (Killed on one machine without it,
the kernel closes the socket and the hub hears the end at once.) TLS passes through untouched."""

from __future__ import annotations

import asyncio
import contextlib

CHUNK = 64 * 1024


class SilentLine:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []  # hub ends left open, unheard

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._held:
            writer.transport.abort()

    async def _accept(self, near_r: asyncio.StreamReader, near_w: asyncio.StreamWriter) -> None:
        try:
            far_r, far_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            near_w.transport.abort()
            return
        self._held.append(far_w)
        to_hub = asyncio.create_task(_pipe(near_r, far_w))
        from_hub = asyncio.create_task(_pipe(far_r, near_w))
        await asyncio.wait({to_hub, from_hub}, return_when=asyncio.FIRST_COMPLETED)
        if from_hub.done():  # the hub ended it (a refusal, a stale link): the member hears it
            to_hub.cancel()
            near_w.transport.abort()
            far_w.transport.abort()
        else:  # the member's end died: the hub hears nothing, and nothing of it is read
            from_hub.cancel()
            near_w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
