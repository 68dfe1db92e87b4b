"""Joining the network, without servers: a node's signed application as the hub reads it, the
node's NATS key on disk, and why a member node refuses to start with its credentials."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nkeys
import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.joining import APPLICATION_FILE, init_node
from deploy.node import credentials_problem
from shared.contracts.directory import (
    LocalisedText,
    MembershipStatus,
    OrganisationPublished,
    PublicKey,
)
from shared.crypto import NodeKeys
from shared.errors import Forbidden, Invalid
from shared.membership.joining import (
    NKEY_SEED_FILE,
    Application,
    Credentials,
    check_application,
    load_or_create_nkey,
    make_application,
    nkey_public,
    read_application,
)
from shared.settings import NodeRole, NodeSettings

HUB = "hub.relais.example:7422"


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """The node's start-up messages in English, whatever the machine's language."""
    monkeypatch.setenv("RELAIS_LANG", "en")


def stranger_nkey() -> str:
    return nkey_public(nkeys.from_seed(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)))


def applicant(org: str, keys: NodeKeys | None) -> OrganisationPublished:
    """The draft record a new node sends, carrying its public keys (``None``: none)."""
    return OrganisationPublished(
        org_id=org,
        version=1,
        name=LocalisedText(fr="Nouvelle association", ar="", en=""),
        kind="ngo",
        status=MembershipStatus.APPLICANT,
        city="rabat",
        keys=[PublicKey.model_validate(k) for k in keys.public_keys()] if keys else [],
    )


def signed_application(folder: Path, org: str = "nouvelle") -> Application:
    """What ``init_node`` writes for the draft record ``relais node init`` gives it."""
    return init_node(folder, applicant(org, None), HUB)


def refusal(raw: str | bytes) -> Invalid | Forbidden:
    with pytest.raises((Invalid, Forbidden)) as refused:
        read_application(raw)
    assert isinstance(refused.value, Invalid | Forbidden)
    return refused.value


def claim_another_organisation(application: dict[str, Any]) -> None:
    application["org_id"] = application["record"]["org_id"] = "imposteur"


def move_to_another_city(application: dict[str, Any]) -> None:
    application["record"]["city"] = "tanger"


def swap_the_nats_key(application: dict[str, Any]) -> None:
    application["nkey"] = stranger_nkey()


def apply_to_another_hub(application: dict[str, Any]) -> None:
    application["hub"] = "other-hub.example:7422"


class TestTheApplication:
    def test_an_application_reads_back_as_it_was_written(self, tmp_path: Path) -> None:
        written = signed_application(tmp_path)
        read = read_application((tmp_path / APPLICATION_FILE).read_bytes())
        assert read == written
        assert read.org_id == "nouvelle" and read.hub == HUB
        assert read.nkey == nkey_public(load_or_create_nkey(tmp_path))
        check_application(read)  # the hub's own check, on the parsed application

    def test_it_holds_no_secret_of_the_node(self, tmp_path: Path) -> None:
        signed_application(tmp_path)
        sent = (tmp_path / APPLICATION_FILE).read_text()
        seed = (tmp_path / NKEY_SEED_FILE).read_text().strip()
        assert seed not in sent
        for secret in ("signing.key", "encryption.key"):
            raw = (tmp_path / secret).read_bytes()
            assert base64.b64encode(raw).decode() not in sent and raw.hex() not in sent

    def test_make_application_signs_what_the_hub_checks(self, tmp_path: Path) -> None:
        keys = NodeKeys.load_or_create(tmp_path)
        application = make_application(keys, stranger_nkey(), applicant("nouvelle", keys), HUB)
        check_application(application)
        assert read_application(application.model_dump_json()) == application

    @pytest.mark.parametrize(
        "tamper",
        [
            pytest.param(claim_another_organisation, id="another-organisation"),
            pytest.param(move_to_another_city, id="a-changed-record"),
            pytest.param(swap_the_nats_key, id="another-nats-key"),
            pytest.param(apply_to_another_hub, id="another-hub"),
        ],
    )
    def test_a_tampered_application_is_refused_naming_its_signature(
        self, tmp_path: Path, tamper: Callable[[dict[str, Any]], None]
    ) -> None:
        application = json.loads(signed_application(tmp_path).model_dump_json())
        tamper(application)
        refused = refusal(json.dumps(application))
        assert isinstance(refused, Forbidden)
        assert refused.field == "signature"
        assert "signature does not match" in refused.detail

    def test_an_application_signed_with_a_key_it_does_not_carry_is_refused(
        self, tmp_path: Path
    ) -> None:
        application = json.loads(signed_application(tmp_path / "honest").model_dump_json())
        other = NodeKeys.load_or_create(tmp_path / "other")
        foreign = applicant("nouvelle", other).keys
        application["record"]["keys"] = [key.model_dump(mode="json") for key in foreign]
        refused = refusal(json.dumps(application))
        assert isinstance(refused, Forbidden)
        assert refused.field == "key_id"

    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            pytest.param(b"not json at all", "application", id="not-json"),
            pytest.param(json.dumps({"org_id": "nouvelle"}), "hub", id="missing-fields"),
        ],
    )
    def test_a_malformed_application_is_refused_naming_what_is_wrong(
        self, raw: str | bytes, field: str
    ) -> None:
        refused = refusal(raw)
        assert isinstance(refused, Invalid)
        assert refused.detail.startswith(f"malformed application: {field}: ")
        assert refused.field == field

    def test_an_organisation_id_the_network_cannot_use_is_refused(self, tmp_path: Path) -> None:
        application = json.loads(signed_application(tmp_path).model_dump_json())
        application["org_id"] = "Not An Id"
        refused = refusal(json.dumps(application))
        assert isinstance(refused, Invalid)
        assert refused.field == "org_id"

    def test_a_nats_key_with_a_wrong_checksum_is_refused(self, tmp_path: Path) -> None:
        application = json.loads(signed_application(tmp_path).model_dump_json())
        nkey = application["nkey"]
        application["nkey"] = nkey[:-1] + ("A" if nkey[-1] != "A" else "B")
        refused = refusal(json.dumps(application))
        assert isinstance(refused, Invalid)
        assert refused.field == "nkey"

    def test_an_application_whose_record_is_another_organisations_is_refused(
        self, tmp_path: Path
    ) -> None:
        application = json.loads(signed_application(tmp_path).model_dump_json())
        application["record"]["org_id"] = "amal"
        refused = refusal(json.dumps(application))
        assert isinstance(refused, Invalid)
        assert refused.field == "record.org_id"

    def test_an_application_without_the_nodes_public_keys_is_refused(self, tmp_path: Path) -> None:
        keys = NodeKeys.load_or_create(tmp_path)
        application = make_application(keys, stranger_nkey(), applicant("nouvelle", None), HUB)
        with pytest.raises(Invalid, match="an Ed25519 and an X25519 key"):
            check_application(application)


class TestRelaisNodeInit:
    def run(self, folder: Path) -> Any:
        result = CliRunner().invoke(
            app,
            ["node", "init", "--org", "nouvelle", "--hub", HUB, "--dir", str(folder)],
            env={"RELAIS_LANG": "en"},
        )
        assert result.exit_code == 0, result.output
        return result

    def test_it_writes_the_application_and_the_nodes_settings(self, tmp_path: Path) -> None:
        result = self.run(tmp_path)
        assert str(tmp_path / APPLICATION_FILE) in result.output
        settings = (tmp_path / "node.env").read_text().splitlines()
        assert {"RELAIS_ORG=nouvelle", "RELAIS_ROLE=member", f"RELAIS_HUB_ADDRESS={HUB}"} <= set(
            settings
        )
        assert stat.S_IMODE((tmp_path / "node.env").stat().st_mode) == 0o600  # its secret key

    def test_a_second_run_keeps_the_nodes_keys(self, tmp_path: Path) -> None:
        self.run(tmp_path)
        first = Application.model_validate_json((tmp_path / APPLICATION_FILE).read_bytes())
        self.run(tmp_path)
        second = Application.model_validate_json((tmp_path / APPLICATION_FILE).read_bytes())
        assert second.nkey == first.nkey
        assert second.key_id == first.key_id

    def test_what_it_writes_is_an_application_the_hub_accepts(self, tmp_path: Path) -> None:
        self.run(tmp_path)
        application = read_application((tmp_path / APPLICATION_FILE).read_bytes())
        assert application.org_id == "nouvelle"
        assert application.record.keys  # the public keys its signature is checked with


class TestTheNodesNatsKey:
    def test_the_seed_is_readable_by_the_node_alone(self, tmp_path: Path) -> None:
        folder = tmp_path / "node"
        load_or_create_nkey(folder)
        assert stat.S_IMODE((folder / NKEY_SEED_FILE).stat().st_mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0

    def test_a_second_call_reuses_the_same_key(self, tmp_path: Path) -> None:
        first = load_or_create_nkey(tmp_path)
        seed = (tmp_path / NKEY_SEED_FILE).read_bytes()
        second = load_or_create_nkey(tmp_path)
        assert nkey_public(second) == nkey_public(first)
        assert (tmp_path / NKEY_SEED_FILE).read_bytes() == seed
        assert nkey_public(first).startswith("U")  # a user key: what a leaf logs in with


def credentials(
    nkey: str,
    *,
    org: str = "nouvelle",
    hub: str = HUB,
    domain: str = "hub",
    expires_at: datetime | None = None,
) -> Credentials:
    now = datetime.now(UTC)
    return Credentials(
        org_id=org,
        hub=hub,
        hub_leaf_urls=[f"tls://{hub}"],
        hub_domain=domain,
        hub_org="secretariat",
        account=f"ORG_{org}",
        nkey=nkey,
        ca_certificate="-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
        issued_at=now - timedelta(days=1),
        expires_at=expires_at or now + timedelta(days=365),
    )


def member(path: Path, **overrides: Any) -> NodeSettings:
    """A member node whose keys (its NATS key among them) are beside its credentials."""
    fields: dict[str, Any] = {
        "node_id": "nouvelle",
        "org": "nouvelle",
        "nats_url": "nats://127.0.0.1:4222",
        "database_url": "postgresql://nowhere/relais",
        "secret_key": "a secret of the node, long enough",
        "key_dir": path.parent,
        "credentials_file": path,
        "hub_address": HUB,
        "hub_domain": "hub",
        **overrides,
    }
    return NodeSettings(**fields)


class TestANodesStartUpCheck:
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "credentials.json"

    @pytest.fixture
    def nkey(self, tmp_path: Path) -> str:
        """The node's own NATS key, as ``relais node init`` made it."""
        return nkey_public(load_or_create_nkey(tmp_path))

    def write(self, path: Path, issued: Credentials) -> Path:
        path.write_text(issued.model_dump_json())
        return path

    def test_its_own_valid_credentials_let_it_start(self, path: Path, nkey: str) -> None:
        assert credentials_problem(member(self.write(path, credentials(nkey)))) is None

    def test_the_hub_starts_without_credentials(self, path: Path) -> None:
        hub = member(path, node_id="hub", org="secretariat", role=NodeRole.SECRETARIAT)
        assert credentials_problem(hub) is None

    def test_without_the_file_it_says_who_issues_them(self, path: Path) -> None:
        problem = credentials_problem(member(path))
        assert problem is not None
        assert f"no credentials at {path}" in problem
        assert "relais hub admit" in problem

    @pytest.mark.parametrize(
        "content", ["", "not json", json.dumps({"org_id": "nouvelle"})], ids=str
    )
    def test_a_file_that_is_not_credentials_is_refused(self, path: Path, content: str) -> None:
        path.write_text(content)
        assert credentials_problem(member(path)) == f"the credentials file {path} is not valid"

    def test_another_organisations_credentials_are_refused(self, path: Path, nkey: str) -> None:
        self.write(path, credentials(nkey, org="amal"))
        problem = credentials_problem(member(path))
        assert problem == "the credentials are for amal, this node is nouvelle"

    def test_credentials_from_another_hub_are_refused(self, path: Path, nkey: str) -> None:
        self.write(path, credentials(nkey, hub="other-hub.example:7422"))
        problem = credentials_problem(member(path))
        assert problem is not None
        assert f"configured for the hub {HUB}" in problem
        assert "from the hub other-hub.example:7422" in problem

    def test_credentials_naming_another_hub_domain_are_refused(self, path: Path, nkey: str) -> None:
        self.write(path, credentials(nkey, domain="elsewhere"))
        problem = credentials_problem(member(path))
        assert problem == "the credentials name the hub domain elsewhere, this node hub"

    def test_credentials_for_another_nats_key_are_refused(self, path: Path, nkey: str) -> None:
        self.write(path, credentials(stranger_nkey()))
        problem = credentials_problem(member(path))
        assert problem is not None
        assert "for another NATS key than this node's" in problem
        assert "relais node join" in problem

    def test_expired_credentials_are_refused_with_their_date(self, path: Path, nkey: str) -> None:
        expired = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
        self.write(path, credentials(nkey, expires_at=expired))
        problem = credentials_problem(member(path))
        assert problem is not None
        assert "expired on 2024-03-01T12:30" in problem
        assert "ask the secretariat for new ones" in problem
