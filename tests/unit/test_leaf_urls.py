"""A member's leaf link to a hub of several servers: every server's address in the one remote,
in the demo's rendering, in what ``relais node join --hub`` writes and in the production
example, each checked by the real nats-server (``-t``: it parses, checks and exits)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from deploy import nats_server, tls
from deploy.cli import app
from deploy.joining import (
    APPLICATION_FILE,
    BadLeafUrl,
    check_leaf_url,
    init_hub,
    init_node,
    leaf_remote_conf,
    load_hub,
)
from deploy.nats_config import TEMPLATES, NatsServerSpec
from shared.contracts.directory import LocalisedText, MembershipStatus, OrganisationPublished
from shared.membership.joining import Credentials, load_or_create_nkey, nkey_public

HUBS = ("tls://127.0.0.1:17422", "tls://127.0.0.1:17423", "tls://127.0.0.1:17424")


def nats_check(config: Path, env: dict[str, str] | None = None) -> str:
    """nats-server's own check of a configuration file; its complaint, or ""."""
    done = subprocess.run(
        [nats_server.binary(), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
    )
    return "" if done.returncode == 0 else done.stdout + done.stderr


def seed(folder: Path) -> str:
    return bytes(load_or_create_nkey(folder).seed).decode()


def test_the_demos_leaf_lists_every_hub_server_and_nats_server_accepts_it(
    tmp_path: Path,
) -> None:
    tls.make_ca(tmp_path)
    spec = NatsServerSpec(
        "sanad",
        "sanad",
        14223,
        18223,
        tmp_path / "js",
        hub_leaf_urls=HUBS,
        ca_file=tmp_path / tls.CA_CERT,
        nkey_seed=seed(tmp_path),
    )
    config = spec.write(tmp_path / "sanad.conf")
    text = config.read_text()
    assert 'urls: ["tls://127.0.0.1:17422", "tls://127.0.0.1:17423", "tls://127.0.0.1:17424"]' in (
        text
    )
    assert text.count("urls:") == 1  # one remote: one link, to whichever server answers
    assert nats_check(config) == ""


def test_the_remote_that_join_writes_has_every_address_the_secret_and_the_denials(
    tmp_path: Path,
) -> None:
    tls.make_ca(tmp_path)
    block = leaf_remote_conf(HUBS, nkey_seed=seed(tmp_path), ca_file=tmp_path / tls.CA_CERT)
    (remote,) = json.loads(block.removeprefix("remotes: ").strip())
    assert remote["urls"] == list(HUBS)
    assert remote["nkey"].startswith("SU")
    assert "relais.local.>" in remote["deny_exports"]
    assert "relais.local.>" in remote["deny_imports"]
    # As an operator includes it: in the leafnodes block of the node's own nats-server.
    config = tmp_path / "node.conf"
    config.write_text(
        'listen: "127.0.0.1:14225"\n'
        f'jetstream {{ store_dir: "{tmp_path / "js"}", domain: "sanad" }}\n'
        f"leafnodes {{\n{block}}}\n"
    )
    assert nats_check(config) == ""


@pytest.mark.parametrize(
    "url", ["hub.example.org:7422", "tls://hub.example.org", "http://hub:7422", "tls://:7422", ""]
)
def test_an_address_nats_server_would_not_dial_is_refused(url: str) -> None:
    with pytest.raises(BadLeafUrl):
        check_leaf_url(url)


def test_the_production_example_takes_one_address_or_several(tmp_path: Path) -> None:
    tls.make_ca(tmp_path)
    text = (TEMPLATES / "production" / "leaf.conf").read_text()
    text = text.replace("/etc/nats/tls/network-ca.crt", str(tmp_path / tls.CA_CERT))
    text = text.replace("/data/jetstream", str(tmp_path / "js"))
    assert "urls: $HUB_LEAF_URL" in text
    config = tmp_path / "leaf.conf"
    config.write_text(text)
    (tmp_path / "relais").mkdir()
    users = (TEMPLATES / "production" / "nats-users.conf").read_text()
    (tmp_path / "relais" / "nats-users.conf").write_text(users)
    env = {
        "RELAIS_NODE_ID": "sanad",
        "NATS_PASSWORD": "nats0a1b",
        "NATS_SYSTEM_PASSWORD": "nats2c3d",
        "NATS_NKEY_SEED": seed(tmp_path),
    }
    for value in (HUBS[0], f"[{', '.join(HUBS)}]"):
        assert nats_check(config, {**env, "HUB_LEAF_URL": value}) == "", value


def test_hub_init_puts_every_server_in_the_credentials_and_the_certificate(
    tmp_path: Path,
) -> None:
    servers = [f"tls://hub-{i}.relais.example.org:7422" for i in (1, 2, 3)]
    hub = init_hub(tmp_path / "hub", "hub-1.relais.example.org:7422", leaf_urls=servers)
    assert load_hub(hub.folder).leaf_urls == servers
    certificate = x509.load_pem_x509_certificate(hub.tls_cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        f"hub-{i}.relais.example.org" for i in (1, 2, 3)
    ]
    with pytest.raises(BadLeafUrl):
        init_hub(tmp_path / "bad", "hub.example.org:7422", leaf_urls=["hub-2:7422"])
    assert not (tmp_path / "bad").exists()  # refused before anything is made
    assert init_hub(tmp_path / "one", "hub.example.org:7422").leaf_urls == [
        "tls://hub.example.org:7422"
    ]


class TestNodeJoinWithSeveralHubs:
    def joined(self, tmp_path: Path, *hubs: str) -> tuple[int, str, Path]:
        folder = tmp_path / "node"
        record = OrganisationPublished(
            org_id="nouvelle",
            version=1,
            name=LocalisedText(fr="Nouvelle", ar="", en=""),
            kind="ngo",
            status=MembershipStatus.APPLICANT,
            city="rabat",
        )
        init_node(folder, record, "127.0.0.1:17422")
        assert (folder / APPLICATION_FILE).exists()
        tls.make_ca(tmp_path)
        now = datetime.now(UTC)
        issued = Credentials(
            org_id="nouvelle",
            hub="127.0.0.1:17422",
            hub_leaf_urls=[HUBS[0]],
            hub_domain="hub",
            hub_org="secretariat",
            account="ORG_nouvelle",
            nkey=nkey_public(load_or_create_nkey(folder)),
            ca_certificate=(tmp_path / tls.CA_CERT).read_text(),
            issued_at=now,
            expires_at=now + timedelta(days=30),
        )
        path = tmp_path / "credentials.json"
        path.write_text(issued.model_dump_json())
        options = [x for url in hubs for x in ("--hub", url)]
        result = CliRunner().invoke(
            app,
            ["node", "join", str(path), "--dir", str(folder), *options],
            env={"RELAIS_LANG": "en"},
        )
        return result.exit_code, result.output, folder / "leaf-remote.conf"

    def urls(self, conf: Path) -> list[str]:
        (remote,) = json.loads(conf.read_text().removeprefix("remotes: "))
        return list(remote["urls"])

    def test_each_hub_given_is_in_the_leaf_remote(self, tmp_path: Path) -> None:
        code, output, conf = self.joined(tmp_path, *HUBS)
        assert code == 0, output
        assert self.urls(conf) == list(HUBS)
        assert conf.stat().st_mode & 0o077 == 0  # it holds the seed

    def test_without_hub_the_credentials_addresses_are_used(self, tmp_path: Path) -> None:
        code, output, conf = self.joined(tmp_path)
        assert code == 0, output
        assert self.urls(conf) == [HUBS[0]]

    def test_a_bad_address_is_refused_and_nothing_is_written(self, tmp_path: Path) -> None:
        code, output, conf = self.joined(tmp_path, HUBS[0], "hub-2.example.org:7422")
        assert code == 2
        assert re.search(r"hub-2\.example\.org:7422 is not a hub leaf address", output)
        assert not conf.exists()
