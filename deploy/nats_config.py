"""nats-server configurations for a hub and its leaves, written from deploy/nats/ templates."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from string import Template

from shared.federation import DEFAULT_QUOTA

TEMPLATES = Path(__file__).parent / "nats"


@dataclass(frozen=True)
class NatsServerSpec:
    """One nats-server: its ports, its JetStream domain and, for a leaf, its hub."""

    name: str
    domain: str
    client_port: int
    monitor_port: int
    store_dir: Path
    leaf_port: int | None = None  # the hub listens for leaves here
    hub_leaf_urls: tuple[str, ...] = ()  # a leaf connects to its hub here
    host: str = "127.0.0.1"
    # The hub: its leaf port's TLS certificate and key, and the accounts file its directory
    # writes (without it, one account for everyone: tests of a lone server only).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    accounts_file: Path | None = None
    # A leaf: the network CA the hub's certificate must chain to, and its nkey seed.
    ca_file: Path | None = None
    nkey_seed: str | None = None
    # A leaf: the file of its clients (the node's services, its member systems; written by
    # the node, shared.auth.nats_users) and the password of its system account's user, with
    # which the node reloads it. Without them, anyone may connect (tests of a lone server).
    users_file: Path | None = None
    system_password: str | None = None
    # The largest message a client or a leaf link may send (shared/federation.py, Quota).
    max_payload: int = DEFAULT_QUOTA.max_msg_size

    @property
    def is_hub(self) -> bool:
        return self.leaf_port is not None

    @property
    def client_url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def leaf_url(self) -> str:
        assert self.leaf_port is not None
        return f"nats-leaf://{self.host}:{self.leaf_port}"

    def render(
        self, config_dir: Path | None = None, *, template: str | None = None, **more: object
    ) -> str:
        """The configuration, for a file in ``config_dir`` (nats-server includes only by a path
        relative to the including file); ``template`` and ``more`` of its values: a server of
        the hub cluster (deploy/hub_cluster.py)."""
        template = template or ("hub.conf.tmpl" if self.is_hub else "leaf.conf.tmpl")
        return Template((TEMPLATES / template).read_text()).substitute(
            more,
            server_name=self.name,
            max_payload=self.max_payload,
            host=self.host,
            client_port=self.client_port,
            monitor_port=self.monitor_port,
            store_dir=str(self.store_dir),
            domain=self.domain,
            leaf_port=self.leaf_port or "",
            hub_leaf_urls=", ".join(f'"{url}"' for url in self.hub_leaf_urls),
            leaf_tls=self._leaf_tls(),
            accounts=self._accounts(config_dir),
            remote_auth=self._remote_auth(),
            authorization=self._authorization(config_dir),
        )

    def _authorization(self, config_dir: Path | None) -> str:
        if self.users_file is None or self.system_password is None:
            return ""
        where = os.path.relpath(self.users_file, config_dir or Path.cwd())
        password = self.system_password
        return (
            "# Every client logs in: the node's services with their password, each member\n"
            "# system with its nkey and only its own permissions. The node writes the file and\n"
            "# reloads the server through its system account.\n"
            f'include "{where}"\n'
            f'accounts {{ SYS: {{ users: [{{ user: "sys", password: "{password}" }}] }} }}\n'
            "system_account: SYS\n"
        )

    def _accounts(self, config_dir: Path | None) -> str:
        if self.accounts_file is None:
            return ""
        where = os.path.relpath(self.accounts_file, config_dir or Path.cwd())
        return f'# The accounts, from the directory.\ninclude "{where}"\n'

    def _leaf_tls(self) -> str:
        if self.tls_cert is None or self.tls_key is None:
            return ""
        return (
            "  # Leaves must speak TLS; who they are is their nkey (the accounts file).\n"
            "  tls {\n"
            f'    cert_file: "{self.tls_cert}"\n'
            f'    key_file: "{self.tls_key}"\n'
            "    timeout: 5\n"
            "  }\n"
        )

    def _remote_auth(self) -> str:
        lines = ""
        if self.nkey_seed is not None:
            lines += f'      nkey: "{self.nkey_seed}"\n'
        if self.ca_file is not None:
            lines += f'      tls {{ ca_file: "{self.ca_file}", timeout: 5 }}\n'
        return lines

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a leaf's seed
        with os.fdopen(descriptor, "w") as file:
            file.write(self.render(path.parent))
        return path
