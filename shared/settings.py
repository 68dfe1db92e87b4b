"""Node settings, read once from the environment (prefix ``RELAIS_``) and passed down."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator
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
    secret_key: str = Field(min_length=16)
    demo: bool = False
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    db_pool_max: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _no_demo_secret_outside_the_demo(self) -> Self:
        if not self.demo and self.secret_key == DEMO_SECRET:
            raise ValueError("RELAIS_SECRET_KEY is the demo's secret; set a secret of your own")
        return self

    @property
    def is_hub(self) -> bool:
        return self.role is NodeRole.SECRETARIAT

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"
