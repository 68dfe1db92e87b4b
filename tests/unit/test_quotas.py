"""What one organisation may hold and send at the hub: its streams' limits, its account's
JetStream storage, and the largest message a leaf link carries, each checked by the real
nats-server where it is configuration (``-t``: it parses, checks and exits)."""

from __future__ import annotations

from pathlib import Path

from deploy import tls
from deploy.joining import ACCOUNTS_FILE, init_hub
from deploy.nats_config import NatsServerSpec
from shared.federation import DEFAULT_QUOTA, MIB, Member, Quota, hub_member_streams
from shared.membership.accounts import OrgAccount, render_accounts
from shared.membership.joining import load_or_create_nkey, nkey_public
from shared.settings import NodeSettings
from tests.unit.test_leaf_urls import nats_check


def test_a_members_hub_streams_are_bounded_and_a_document_chunk_still_fits() -> None:
    quota = Quota(max_bytes=64 * MIB, max_msgs=5000, max_msg_size=MIB)
    for stream in hub_member_streams(Member("sanad", "sanad"), hub_domain="hub", quota=quota):
        assert (stream.max_bytes, stream.max_msgs, stream.max_msg_size) == (64 * MIB, 5000, MIB)
    assert DEFAULT_QUOTA.max_msg_size == MIB  # a 10 MB document goes in ten chunks
    assert all(
        s.max_bytes == DEFAULT_QUOTA.max_bytes
        for s in hub_member_streams(Member("sanad", "sanad"), hub_domain="hub")
    )


def test_the_settings_give_the_quota_and_refuse_a_message_size_nats_would_not_carry() -> None:
    base = {
        "node_id": "hub",
        "org": "secretariat",
        "role": "secretariat",
        "nats_url": "nats://127.0.0.1:4222",
        "database_url": "postgresql://x@127.0.0.1/x",
        "secret_key": "k" * 32,
    }
    settings = NodeSettings(**base, member_stream_max_bytes=32 * MIB)  # type: ignore[arg-type]
    assert settings.quota == Quota(max_bytes=32 * MIB)
    try:
        NodeSettings(**base, max_message_bytes=64 * MIB)  # type: ignore[arg-type]
    except ValueError as exc:
        assert "max_message_bytes" in str(exc)
    else:
        raise AssertionError("a 64 MiB message size was accepted")


def test_the_hub_with_limited_member_accounts_and_payload_is_taken_by_nats_server(
    tmp_path: Path,
) -> None:
    hub = init_hub(tmp_path / "hub", "127.0.0.1:17422")
    sanad = OrgAccount("sanad", nkey_public(load_or_create_nkey(tmp_path / "sanad")))
    text = render_accounts([sanad], hub_domain="hub", quota=Quota(max_bytes=8 * MIB), replicas=3)
    (hub.folder / ACCOUNTS_FILE).write_text(text)
    assert '"max_file": 50331648' in text  # two streams of 8 MiB, three replicas
    assert '"max_bytes_required": true' in text and '"max_streams": 2' in text
    assert "limits: { max_leafnodes: 1 }" in text  # one leaf link per credential
    spec = NatsServerSpec(
        "hub",
        "hub",
        14222,
        18222,
        tmp_path / "js",
        leaf_port=17422,
        tls_cert=hub.folder / tls.HUB_CERT,
        tls_key=hub.folder / tls.HUB_KEY,
        accounts_file=hub.folder / ACCOUNTS_FILE,
        max_payload=MIB,
    )
    config = spec.write(hub.folder / "hub.conf")
    assert "max_payload: 1048576" in config.read_text()
    assert nats_check(config) == ""


def test_a_leaf_sends_no_message_larger_than_the_hub_takes(tmp_path: Path) -> None:
    leaf = NatsServerSpec(
        "sanad", "sanad", 4223, 8223, tmp_path, hub_leaf_urls=("nats-leaf://127.0.0.1:7422",)
    ).write(tmp_path / "sanad.conf")
    assert f"max_payload: {DEFAULT_QUOTA.max_msg_size}" in leaf.read_text()
    assert nats_check(leaf) == ""
