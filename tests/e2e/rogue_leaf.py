"""An organisation that controls its leaf can speak the leaf-node protocol to the hub as it
likes: this is such a leaf, logged in with the organisation's own credentials (its nkey), over
TLS, sending what it chooses, reading the hub's answers raw. The hub's ``-ERR 'Permissions
Violation …'`` is what the isolation tests look for."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

import nkeys

MESSAGES = ("LMSG", "HMSG")  # what the hub sends a leaf: ``HMSG`` when it has headers


@dataclass
class RogueLeaf:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def connect(
        cls, port: int, *, seed: str | None, ca_file: Path | None, tls: bool = True
    ) -> tuple[RogueLeaf, str]:
        """Log in; returns the leaf and the hub's first answer after ``CONNECT`` (``PONG``
        when it is admitted, ``-ERR …`` otherwise)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        info = json.loads((await reader.readline()).decode().split(" ", 1)[1])
        if tls:
            context = ssl.create_default_context(cafile=str(ca_file))
            await writer.start_tls(context, server_hostname="127.0.0.1")
        connect: dict[str, object] = {
            "name": f"rogue-{uuid.uuid4().hex[:6]}",
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "tls_required": tls,
        }
        if seed is not None:
            pair = nkeys.from_seed(bytearray(seed.encode()))
            signature = pair.sign(info["nonce"].encode())
            connect["nkey"] = bytes(pair.public_key).decode()
            connect["sig"] = base64.urlsafe_b64encode(signature).decode().rstrip("=")
        leaf = cls(reader, writer)
        writer.write(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        return leaf, await leaf.answer()

    async def answer(self, within: float = 5) -> str:
        """The next line from the hub that is not chatter (its own PINGs, INFO, interest)."""
        async with asyncio.timeout(within):
            while True:
                line = (await self.reader.readline()).decode().strip()
                if not line:
                    return "closed"
                if line == "PING":
                    self.writer.write(b"PONG\r\n")
                    continue
                if line.startswith(MESSAGES):
                    await self._skip_payload(line)
                    continue
                if line.startswith(("INFO", "LS+", "LS-")):
                    continue
                return line

    async def publish(self, subject: str, reply: str = "", payload: bytes = b"{}") -> str:
        """Send a message into the hub, then a PING: ``PONG`` if it was taken, else the error."""
        args = f"{subject} {reply} {len(payload)}".replace("  ", " ")
        self.writer.write(f"LMSG {args}\r\n".encode() + payload + b"\r\nPING\r\n")
        return await self.answer()

    async def subscribe(self, subject: str) -> str:
        self.writer.write(f"LS+ {subject}\r\nPING\r\n".encode())
        return await self.answer()

    async def received(self, seconds: float) -> set[str]:
        """The subjects of the messages the hub sends this leaf within ``seconds``."""
        subjects: set[str] = set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while line := (await self.reader.readline()).decode().strip():
                    if line == "PING":
                        self.writer.write(b"PONG\r\n")
                    elif line.startswith(MESSAGES):
                        subjects.add(line.split()[1])
                        await self._skip_payload(line)
        return subjects

    async def _skip_payload(self, line: str) -> None:
        """A message's headers and payload: its line ends with their size in bytes."""
        await self.reader.readexactly(int(line.split()[-1]) + 2)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()
