"""nats-server configurations for a hub and its leaves, written from deploy/nats/ templates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

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

    def render(self) -> str:
        template = "hub.conf.tmpl" if self.is_hub else "leaf.conf.tmpl"
        return Template((TEMPLATES / template).read_text()).substitute(
            server_name=self.name,
            host=self.host,
            client_port=self.client_port,
            monitor_port=self.monitor_port,
            store_dir=str(self.store_dir),
            domain=self.domain,
            leaf_port=self.leaf_port or "",
            hub_leaf_urls=", ".join(f'"{url}"' for url in self.hub_leaf_urls),
        )

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render())
        return path
