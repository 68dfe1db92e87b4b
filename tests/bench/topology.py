"""The federation a benchmark runs on: real servers from the project's launcher, no nodes.

A hub ("secretariat") and two member organisations ("sanad", "amal") on free ports under a
fresh temporary root; every node's streams and the hub's ``FROM_*``/``ROUTER``/``TO_*`` declared
with ``shared.federation``, as the nodes would. Everything is stopped and the root deleted on
exit, after the servers' logs have been read for errors and warnings.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from nats.js.api import StreamConfig

from deploy.network import HUB_DOMAIN, Network, NodePlan, on_free_ports
from services.directory import hub_server
from shared.bus import Bus
from shared.contracts.directory import LinkProbed
from shared.events import make_event, registry
from shared.federation import INBOX, Member, node_streams, outbox_consumer
from shared.membership.accounts import OrgAccount, render_accounts
from shared.membership.joining import load_or_create_nkey, nkey_public
from shared.settings import DEMO_SECRET

HUB_ORG = "secretariat"
MEMBERS = ("sanad", "amal")
# What a benchmark is about: sanad probing amal, through the hub.
SUBJECT = registry.for_payload(LinkProbed).subject(sender="sanad", recipient="amal")
WARM_UP_LIMIT = 30.0
NATS_NORMAL = ("[INF]", "[DBG]", "[TRC]")
POSTGRES_PROBLEMS = ("WARNING:", "ERROR:", "FATAL:", "PANIC:")
# The launcher's readiness probe, knocking before PostgreSQL accepts connections.
ROUTINE = ("the database system is starting up",)


@dataclass
class Federation:
    """The running servers, and one bus per node that declared its streams."""

    net: Network
    buses: dict[str, Bus]
    warmup_s: float = 0.0
    log_problems: list[str] = field(default_factory=list)

    def plan(self, org: str) -> NodePlan:
        return next(p for p in self.net.plans if p.org == org)


@asynccontextmanager
async def federation(
    say: Callable[[str], None], *, keep: bool = False
) -> AsyncIterator[Federation]:
    """Start the servers, declare the streams, check an event crosses; stop all on exit."""
    # A short root: PostgreSQL's Unix socket path must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="relais-bench-"))
    net = on_free_ports(root, MEMBERS, hub_org=HUB_ORG, secret_key=DEMO_SECRET)
    count = len(net.plans)
    fed = Federation(net, {})
    try:
        started = time.monotonic()
        say(f"starting PostgreSQL and {count} nats-servers under {root}")
        await net.start_servers()
        say(f"servers and leaf links up in {time.monotonic() - started:.1f}s; declaring streams")
        await _declare_streams(fed)
        fed.warmup_s = await _warm_up(fed)
        say(f"federation ready: a first event crossed sanad → hub → amal in {fed.warmup_s:.2f}s")
        yield fed
    finally:
        for bus in fed.buses.values():
            await bus.close()
        await net.stop()
        fed.log_problems = _log_problems(root / "logs")
        if keep:
            say(f"kept {root} (--keep)")
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _declare_streams(fed: Federation) -> None:
    """In the order the sources need: nodes' ``OUTBOX``, the hub's streams, then ``INBOX``."""
    inboxes: list[tuple[Bus, StreamConfig]] = []
    for plan in fed.net.plans:
        bus = await Bus.connect(plan.nats_url, org=plan.org, name=f"bench-{plan.node_id}")
        fed.buses[plan.org] = bus
        for config in node_streams(plan.org, hub_domain=HUB_DOMAIN, is_hub=plan.is_hub):
            if config.name == INBOX:
                inboxes.append((bus, config))
            else:
                await bus.ensure_stream(config)
        if not plan.is_hub:
            await bus.ensure_consumer(outbox_consumer(plan.org))
    hub = fed.buses[HUB_ORG]
    members = [Member(p.org, p.node_id) for p in fed.net.members]
    material = fed.net.hub_material
    await hub_server.apply_accounts(
        render_accounts(
            [
                OrgAccount(p.org, nkey_public(load_or_create_nkey(fed.net.key_dir(p))))
                for p in fed.net.members
            ],
            hub_domain=HUB_DOMAIN,
        ),
        accounts_file=material.accounts_file,
        system_url=material.system_url("127.0.0.1", fed.net.hub.nats_port),
        hub=hub.nc,
        connected=[m.org for m in members],
        cut=[],
    )
    await fed.net.wait_for_leaf_links()
    own = Member(HUB_ORG, HUB_DOMAIN)
    await hub_server.declare_hub_streams(hub, own, members, hub_domain=HUB_DOMAIN)
    for bus, config in inboxes:
        await bus.ensure_stream(config)


async def _warm_up(fed: Federation) -> float:
    """Send one probe and wait until it lands in amal's INBOX: every source link is live."""
    started = time.monotonic()
    probe = LinkProbed(probe_id="warm-up", sent_at=datetime.now(UTC))
    await fed.buses["sanad"].publish(SUBJECT, make_event(probe, source="relais://sanad/bench"))
    try:
        async with asyncio.timeout(WARM_UP_LIMIT):
            while True:  # polling the server: nothing on this side to wait on
                if (await fed.buses["amal"].js.stream_info(INBOX)).state.messages:
                    return time.monotonic() - started
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise RuntimeError(
            f"the warm-up event did not reach amal's INBOX in {WARM_UP_LIMIT:.0f}s:"
            " the federation is not flowing (run with --keep and read the logs)"
        ) from None


def _log_problems(logs: Path, limit: int = 20) -> list[str]:
    """The servers' log lines that are not routine, ``file: line``, the first ``limit``.

    For nats-server, any line not tagged informational (config warnings carry no tag); for
    PostgreSQL, warnings and errors. The launcher's own ``--- ... start`` markers are skipped.
    """
    found: list[str] = []
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip() or line.startswith("--- ") or any(r in line for r in ROUTINE):
                continue
            if path.name.startswith("nats-"):
                odd = not any(tag in line for tag in NATS_NORMAL)
            else:
                odd = any(mark in line for mark in POSTGRES_PROBLEMS)
            if odd:
                found.append(f"{path.name}: {line.strip()}")
                if len(found) >= limit:
                    return found
    return found
