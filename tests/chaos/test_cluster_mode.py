"""The pieces of ``--hub-cluster`` that need no network: which fault kinds each mode takes, and
a member's link to the three hub servers cut and healed as one."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from deploy.ports import free_ports
from tests.chaos.__main__ import main
from tests.chaos.cluster import LinkGroup
from tests.chaos.faults import CLUSTER_KINDS, KINDS
from tests.chaos.link import LinkRelay
from tests.chaos.run import parse_kinds


def test_the_single_hub_keeps_its_kinds_and_the_cluster_swaps_the_hub_server_ones() -> None:
    assert "hub-server-kill" not in KINDS and "hub-server-pause" not in KINDS
    assert set(CLUSTER_KINDS) == (set(KINDS) - {"hub-nats-kill", "hub-nats-pause"}) | {
        "hub-server-kill",
        "hub-server-pause",
    }
    with pytest.raises(ValueError, match="hub-server-kill"):
        parse_kinds("node-kill,hub-server-kill")
    with pytest.raises(ValueError, match="hub-nats-kill"):
        parse_kinds("hub-nats-kill", CLUSTER_KINDS)
    assert parse_kinds("hub-server-pause,link-cut", CLUSTER_KINDS) == (
        "hub-server-pause",
        "link-cut",
    )


def test_the_command_refuses_a_hub_server_fault_without_the_cluster(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--faults", "hub-server-kill", "--duration", "1"])
    assert exit_.value.code == 2
    assert "unknown fault kind(s) hub-server-kill" in capsys.readouterr().err


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _read(reader: asyncio.StreamReader) -> bytes:
    """What comes back; b"" once the relay has ended or reset the connection."""
    try:
        return await asyncio.wait_for(reader.read(4), 2)
    except ConnectionResetError:
        return b""


async def _round_trip(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionResetError):
            writer.write(b"ping")
            await writer.drain()
        return await _read(reader)
    finally:
        writer.close()


async def test_cutting_a_members_link_cuts_its_relay_to_every_hub_server() -> None:
    targets = free_ports(3)
    servers = [await asyncio.start_server(_echo, "127.0.0.1", port) for port in targets]
    relays = zip(free_ports(3), targets, strict=True)
    group = LinkGroup([LinkRelay(f"sanad>hub-{i}", p, t) for i, (p, t) in enumerate(relays)])
    await group.start()
    try:
        open_ = [await asyncio.open_connection("127.0.0.1", r.port) for r in group.relays]
        for reader, writer in open_:
            writer.write(b"ping")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(4), 2) == b"ping"

        assert group.cut() == 3  # one open connection through each relay, all reset
        for reader, _ in open_:
            assert await _read(reader) == b""
        for relay in group.relays:  # and no new one gets through while cut
            assert await _round_trip(relay.port) == b""

        group.heal()
        for relay in group.relays:
            assert await _round_trip(relay.port) == b"ping"
        for _, writer in open_:
            writer.close()
    finally:
        await group.stop()
        for server in servers:
            server.close()
            await server.wait_closed()
