"""Node settings, read once from the environment (prefix ``RELAIS_``) and passed down."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_SECRET = "relais-demo-secret-do-not-use-in-production"


class NodeRole(StrEnum):
    """A node is the hub (the secretariat's) or a member organisation's."""

    SECRETARIAT = "secretariat"
    MEMBER = "member"


class NodeSettings(BaseSettings):
    """What every service on a node needs to know about the node it runs on."""

    model_config = SettingsConfigDict(env_prefix="RELAIS_", extra="ignore")

    node_id: str = Field(
        pattern=r"^[a-z][a-z0-9_]{1,30}$", description="this node's id, also its JetStream domain"
    )
    org: str = Field(
        pattern=r"^[a-z][a-z0-9_]{1,30}$", description="the organisation this node belongs to"
    )
    role: NodeRole = NodeRole.MEMBER
    hub_domain: str = Field(default="hub", pattern=r"^[a-z][a-z0-9_]{1,30}$")
    hub_org: str = Field(default="secretariat", pattern=r"^[a-z][a-z0-9_]{1,30}$")
    nats_url: str
    database_url: str
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None
    demo: bool = False  # before secret_key: its check reads it
    secret_key: str = Field(min_length=16)
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    db_pool_max: int = Field(default=10, ge=1)

    @field_validator("secret_key")
    @classmethod
    def _no_demo_secret_outside_the_demo(cls, value: str, info: ValidationInfo) -> str:
        if value == DEMO_SECRET and not info.data.get("demo", False):
            raise ValueError("this is the demo's secret; set a secret of your own")
        return value

    @property
    def is_hub(self) -> bool:
        return self.role is NodeRole.SECRETARIAT

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"
