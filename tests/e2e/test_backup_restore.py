"""A member node backed up, lost, and restored on a fresh folder (a new database, a new key
folder, an empty JetStream store): it rejoins the network, reads its old referrals with the
old token, and receives a referral sent after the restore, whose sender sees it received.

A network of its own (the launcher's, as ``relais demo``): the node it restores lives in
other folders afterwards, which the session's network must not inherit.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import StreamState

from deploy import nats_server
from deploy.network import Network
from deploy.processes import ProcessSpec
from shared.federation import (
    INBOX,
    INBOX_CONSUMER,
    OUTBOX,
    OUTBOX_CONSUMER,
    ROUTER,
    ROUTER_CONSUMER,
    account_api,
    to_consumer,
)
from tests.e2e.conftest import client, network_of_its_own, relais
from tests.e2e.test_referrals import send, status_at
from tests.waiting import eventually

NODE = "amal"


@pytest.fixture(scope="module")
async def own_network() -> AsyncIterator[tuple[Network, dict[str, Any]]]:
    async with network_of_its_own(("sanad", NODE), "relais-restore-") as (net, creds):
        yield net, creds


async def reach(
    node: Any, referral_id: str, status: str, within: float = 60, net: Network | None = None
) -> None:
    """``net``: on a timeout, say where amal's answers stopped (its OUTBOX, the hub's copy)."""

    async def there() -> bool:
        return await status_at(node, referral_id) == status

    try:
        await eventually(there, within=within, what=f"{referral_id} is {status}")
    except AssertionError as missed:
        if net is None:
            raise
        raise AssertionError(f"{missed}\n{await where_answers_stopped(net)}") from None


async def where_answers_stopped(net: Network) -> str:
    """Every hop of amal's answers to sanad (amal's OUTBOX, the hub's FROM_amal, ROUTER,
    TO_sanad, sanad's INBOX, and the source consumers between them), and the warnings of the
    hub's nats-server and of both nodes: the facts that tell which hop stopped."""
    hub, amal, sanad = net.hub.nats_url, net.plan(NODE).nats_url, net.plan("sanad").nats_url
    streams = (
        ("amal OUTBOX", amal, None, OUTBOX),
        ("hub FROM_amal", hub, account_api(NODE), f"FROM_{NODE}"),
        ("hub ROUTER", hub, None, ROUTER),
        ("hub TO_sanad", hub, account_api("sanad"), "TO_sanad"),
        ("sanad INBOX", sanad, None, INBOX),
    )
    consumers = (
        ("amal OUTBOX>hub", amal, None, OUTBOX, OUTBOX_CONSUMER),
        ("hub FROM_amal>router", hub, account_api(NODE), f"FROM_{NODE}", ROUTER_CONSUMER),
        ("hub ROUTER>to_sanad", hub, None, ROUTER, to_consumer("sanad")),
        ("hub TO_sanad>inbox", hub, account_api("sanad"), "TO_sanad", INBOX_CONSUMER),
    )
    lines = []
    for label, url, api, stream in streams:
        lines.append(f"{label}: {await _read(url, api, lambda js, s=stream: js.stream_info(s))}")
    for label, url, api, stream, name in consumers:
        read = await _read(url, api, lambda js, s=stream, n=name: js.consumer_info(s, n))
        lines.append(f"{label}: {read}")
    for name, mark in (
        ("nats-hub", "[WRN]"),
        ("node-sanad", "WARNING"),
        (f"node-{NODE}", "WARNING"),
    ):
        log = net.root / "logs" / f"{name}.log"
        if log.exists():
            found = [
                line for line in log.read_text().splitlines() if mark in line or "ERROR" in line
            ]
            lines += [f"{name}: {line}" for line in found[-10:]]
    return "\n".join(lines)


async def outbox_state(net: Network) -> StreamState:
    nc = await nats.connect(net.plan(NODE).nats_url, connect_timeout=2)
    try:
        return (await nc.jetstream().stream_info(OUTBOX)).state
    finally:
        await nc.close()


async def _read(url: str, api: str | None, what: Any) -> str:
    """One JetStream reading, or why it could not be read (a diagnostic goes on regardless)."""
    try:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            js = nc.jetstream() if api is None else nc.jetstream(prefix=api)
            info = await what(js)
            state = getattr(info, "state", None)
            if state is not None:
                return f"state={state} sources={getattr(info, 'sources', None)}"
            return (
                f"delivered={info.delivered} ack_floor={info.ack_floor}"
                f" pending={info.num_pending} ack_pending={info.num_ack_pending}"
            )
        finally:
            await nc.close()
    except Exception as exc:
        return f"unreadable ({exc!r})"


async def restored_node(net: Network, fresh: Path, database_url: str) -> None:
    """Start amal's nats-server on an empty store and its node on the restored folders."""
    plan = net.plan(NODE)
    spec = replace(net.nats_spec(plan), store_dir=fresh / "jetstream")
    await net.supervisor.start(
        nats_server.process(spec, config_dir=fresh / "nats", log_dir=net.root / "logs")
    )
    env = {
        **net.node_env(plan),
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_KEY_DIR": str(fresh / "keys"),
        "RELAIS_CREDENTIALS_FILE": str(fresh / "keys" / "credentials.json"),
    }
    await net.supervisor.start(replace(net.node_process(plan), env=env))


async def test_a_node_restored_on_a_fresh_folder_rejoins_and_keeps_its_referrals(
    own_network: tuple[Network, dict[str, Any]], tmp_path: Path
) -> None:
    net, creds = own_network
    plan = net.plan(NODE)
    before = [await send(creds) for _ in range(3)]
    async with client(creds, "sanad", "caseworker") as sanad:
        for referral_id in before:
            await reach(sanad, referral_id, "received")

    archives = tmp_path / "backups"
    archives.mkdir()
    code, out = await relais(
        "backup", archives, "--database-url", net.database_url(plan), "--node-id", NODE,
        "--key-dir", net.key_dir(plan),
    )  # fmt: skip
    assert code == 0, out
    (archive,) = archives.iterdir()
    # Received after the backup, before the loss: in the lost database only.
    between = await send(creds)
    async with client(creds, "sanad", "caseworker") as sanad:
        await reach(sanad, between, "received")

    old_outbox = await outbox_state(net)
    # The machine is lost: the node, its nats-server, its folders.
    await net.supervisor.stop(f"node-{NODE}")
    await net.supervisor.stop(f"nats-{NODE}")

    fresh = tmp_path / "new-machine"
    database = await net.postgres.ensure_database("relais_amal_restored")
    code, out = await relais(
        "restore", archive, "--database-url", database, "--node-id", NODE,
        "--key-dir", fresh / "keys", "--jetstream-dir", fresh / "jetstream",
    )  # fmt: skip
    assert code == 0, out
    assert not (fresh / "jetstream").exists()  # the store starts empty, on purpose
    await restored_node(net, fresh, database)

    async with (
        client(creds, "sanad", "caseworker") as sanad,
        client(creds, NODE, "focal_point") as amal,  # the token issued before the backup
        client(creds, NODE, "admin") as auditor,
    ):
        # Its new OUTBOX counts on from above the lost one's last sequence: the hub, which
        # skips what it has already copied by sequence, takes every answer it sends.
        new_outbox = await outbox_state(net)
        assert new_outbox.first_seq > old_outbox.last_seq, (old_outbox, new_outbox)
        # Its old referrals, readable: the database and the keys that open them came back.
        for referral_id in before:
            assert await status_at(amal, referral_id) == "received"
        opened = await amal.get(f"/api/v1/referrals/{before[0]}/payload")
        assert opened.status_code == 200, opened.text
        assert opened.json()["payload"]["given_name"] == "Awa"

        # It is back on the network: a referral sent now arrives, and its sender hears so
        # (amal's answer leaves from a new OUTBOX, counting on above the lost one).
        after = await send(creds)
        await reach(amal, after, "received", within=120)
        await reach(sanad, after, "received", within=120, net=net)
        # An old one moves on too.
        accepted = await amal.post(f"/api/v1/referrals/{before[0]}/accept")
        assert accepted.status_code == 200, accepted.text
        await reach(sanad, before[0], "accepted", within=120)
        inbox = (await amal.get("/api/v1/referrals", params={"box": "inbox"})).json()["items"]
        ids = [item["referral_id"] for item in inbox]
        assert all(ids.count(r) == 1 for r in [*before, after])

        # The one received after the backup: the hub sends it again (its TO_amal keeps 30
        # days), since the new INBOX starts from nothing.
        await reach(amal, between, "received", within=60)

        # Both commands are on the restored node's audit chain, each chained from the outbox
        # in its own time (the restored node has the hub's whole TO_amal to go through too).
        async def actors(action: str) -> list[str]:
            found = await auditor.get("/api/v1/audit/records", params={"action": action})
            return [r["actor"] for r in found.json()["items"]] if found.status_code == 200 else []

        async def audited() -> bool:
            return bool(await actors("node.restored")) and bool(await actors("node.backup"))

        await eventually(audited, within=60, what="the backup and the restore in amal's log")
        assert await actors("node.backup") == ["system:backup"]


def store_of(nats: ProcessSpec) -> Path:
    """The JetStream store of a nats-server, from the configuration it was started with."""
    config = Path(nats.argv[-1]).read_text()
    return Path(re.search(r'store_dir: "([^"]+)"', config).group(1))  # type: ignore[union-attr]


def running(net: Network, name: str) -> ProcessSpec:
    return next(m.spec for m in net.supervisor.processes if m.spec.name == name)


async def test_a_restored_copy_of_the_jetstream_store_makes_the_hub_skip_new_events(
    own_network: tuple[Network, dict[str, Any]], tmp_path: Path
) -> None:
    """Why the backup leaves the store out: a copy of amal's store taken with the database,
    then amal answers (its OUTBOX climbs), then both are put back: the hub has copied that
    OUTBOX further than the copy's last sequence, and drops what the restored node sends until
    it climbs back there."""
    net, creds = own_network
    node, nats = running(net, f"node-{NODE}"), running(net, f"nats-{NODE}")
    store = store_of(nats)
    sent = [await send(creds) for _ in range(5)]
    async with client(creds, "sanad", "caseworker") as sanad:
        for referral_id in sent:
            await reach(sanad, referral_id, "received", net=net)

    await net.supervisor.stop(node.name)
    await net.supervisor.stop(nats.name)
    shutil.copytree(store, tmp_path / "store-copy")  # the server stopped: a consistent copy
    code, out = await relais(
        "backup", tmp_path / "db.tar", "--database-url", node.env["RELAIS_DATABASE_URL"],
        "--node-id", NODE, "--key-dir", node.env["RELAIS_KEY_DIR"],
    )  # fmt: skip
    assert code == 0, out
    await net.supervisor.start(nats)
    await net.supervisor.start(node)
    async with (
        client(creds, "sanad", "caseworker") as sanad,
        client(creds, NODE, "focal_point") as amal,
    ):
        for referral_id in sent:  # amal's own events, after the copy: never sent again
            assert (await amal.post(f"/api/v1/referrals/{referral_id}/accept")).status_code == 200
        for referral_id in sent:
            await reach(sanad, referral_id, "accepted")

    await net.supervisor.stop(node.name)
    await net.supervisor.stop(nats.name)
    database = await net.postgres.ensure_database("relais_amal_copy")
    code, out = await relais(
        "restore", tmp_path / "db.tar", "--database-url", database, "--node-id", NODE,
        "--key-dir", tmp_path / "keys",
    )  # fmt: skip
    assert code == 0, out
    shutil.copytree(tmp_path / "store-copy", tmp_path / "jetstream")
    spec = replace(net.nats_spec(net.plan(NODE)), store_dir=tmp_path / "jetstream")
    await net.supervisor.start(
        nats_server.process(spec, config_dir=tmp_path / "nats", log_dir=net.root / "logs")
    )
    env = {
        **node.env,
        "RELAIS_DATABASE_URL": database,
        "RELAIS_KEY_DIR": str(tmp_path / "keys"),
        "RELAIS_CREDENTIALS_FILE": str(tmp_path / "keys" / "credentials.json"),
    }
    await net.supervisor.start(replace(node, env=env))
    after = await send(creds)
    async with (
        client(creds, "sanad", "caseworker") as sanad,
        client(creds, NODE, "focal_point") as amal,
    ):
        await reach(amal, after, "received", within=60)  # what the hub sends still arrives
        with pytest.raises(AssertionError):  # but amal's answer is dropped at the hub
            await reach(sanad, after, "received", within=45)
