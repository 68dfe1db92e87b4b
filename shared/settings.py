"""Node settings, read once from the environment (prefix ``RELAIS_``) and passed down."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import pruning
from shared.contracts.referrals import DEFAULT_DEADLINES, Deadlines, Urgency
from shared.federation import DEFAULT_QUOTA, Quota

DEFAULT_TIMEZONE = "Africa/Casablanca"
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
    demo: bool = False  # before secret_key: its check reads it
    secret_key: str = Field(min_length=16)
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="the node's address as its staff reach it, for links sent in notifications "
        "(default: http://<http_host>:<http_port>)",
    )
    otlp_endpoint: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    stream_replicas: int = Field(
        default=1, ge=1, le=5, description="replicas of the hub's streams (3 on a hub cluster)"
    )
    member_stream_max_bytes: int = Field(
        default=DEFAULT_QUOTA.max_bytes,
        ge=1024 * 1024,
        description="on the hub: what each organisation's FROM_ and TO_ stream may hold, in "
        "bytes (the account's storage is twice this, times the replicas)",
    )
    member_stream_max_msgs: int = Field(
        default=DEFAULT_QUOTA.max_msgs,
        ge=1000,
        description="on the hub: how many messages each organisation's FROM_ and TO_ holds",
    )
    max_message_bytes: int = Field(
        default=DEFAULT_QUOTA.max_msg_size,
        ge=64 * 1024,
        le=8 * 1024 * 1024,
        description="on the hub: the largest message an organisation's streams take (a "
        "referral is a few kB; documents travel in chunks of at most this size)",
    )
    leaf_links_per_member: int = Field(
        default=1,
        ge=1,
        le=4,
        description="on the hub: the leaf links one organisation's credential may hold at "
        "once; with 1, a second leaf made with a copy of its nkey is refused",
    )
    refusal_budget: int = Field(
        default=20,
        ge=1,
        description="refused envelopes from one sender, within refusal_budget_minutes, before "
        "the rest are parked as one incident (no dead letter, no answer each)",
    )
    refusal_budget_minutes: float = Field(
        default=10,
        gt=0,
        description="the window of refusal_budget; an incident ends after as long quiet",
    )
    login_attempts: int = Field(
        default=5, ge=1, description="wrong passwords for one account before it is locked"
    )
    login_address_attempts: int = Field(
        default=20,
        ge=1,
        description="wrong passwords from one client address (any accounts) before it is locked",
    )
    login_lock_seconds: int = Field(
        default=900, ge=1, description="how long a locked account (or address) waits"
    )
    login_delay_seconds: float = Field(
        default=0.5, ge=0, le=5, description="added to the answer of each wrong password, growing"
    )
    api_requests_per_minute: int = Field(
        default=6000, ge=1, description="per API or access token; generous: bursts pass"
    )
    db_pool_max: int = Field(default=10, ge=1)
    key_dir: Path = Field(
        default=Path(".relais/keys"), description="the node's private keys, made there if absent"
    )
    credentials_file: Path | None = Field(
        default=None,
        description="on a member node: the credentials the hub issued (relais hub admit); "
        "checked at start against this node's organisation, hub and the time",
    )
    hub_address: str | None = Field(
        default=None, description="on a member node: the hub it was configured for (node init)"
    )
    nats_accounts_file: Path | None = Field(
        default=None,
        description="on the hub: the nats-server accounts file the directory writes",
    )
    nats_system_url: str | None = Field(
        default=None,
        description="the nats-server's system account, to reload its configuration: on the "
        "hub, to cut a removed organisation's link; on any node, for its member systems' users",
    )
    nats_public_url: str | None = Field(
        default=None,
        pattern=r"^(nats|tls)://[^\s/@]+$",
        description="the address member systems reach this node's nats-server at, as its "
        "AsyncAPI document declares it (default: the first of RELAIS_NATS_URL, without its login)",
    )
    nats_users_file: Path | None = Field(
        default=None,
        description="the users file the node's nats-server includes, which the node writes: its "
        "services' user (from RELAIS_NATS_URL) and each member-system client's nkey user",
    )
    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description="the IANA zone every time a person reads is shown in (pages, mails, digest); "
        "machine fields stay UTC",
    )
    referral_deadlines: dict[Urgency, Deadlines] = Field(
        default_factory=lambda: dict(DEFAULT_DEADLINES),
        description='per urgency, as JSON: {"emergency": {"acknowledge_hours": 4, ...}}; '
        "the urgencies left out keep their defaults",
    )
    referral_reminder_share: float = Field(
        default=0.25, gt=0, lt=1, description="remind when this share of a deadline's time is left"
    )
    referral_expiry_grace_hours: float = Field(
        default=24, ge=0, description="after the acknowledge deadline, before a referral expires"
    )
    referral_retention_days: float = Field(
        default=180, gt=0, description="after closing, a referral's payload is crypto-shredded"
    )
    referral_conversation_grace_days: float = Field(
        default=30,
        ge=0,
        description="after a referral closed, how long its two organisations may still write "
        "messages in its conversation",
    )
    referral_clock_seconds: float = Field(
        default=30, gt=0, description="how often the deadline clock looks for what is due"
    )
    metrics_seconds: float = Field(
        default=15,
        gt=0,
        description="how often the figures /metrics shows from JetStream and the database "
        "(consumer lag, dead letters, outbox age, ...) are read again",
    )
    event_retention_hours: float = Field(
        default=31 * 24,
        gt=0,
        description="how long sent outbox events and the ids of processed events are kept, "
        "then pruned: a redelivery is recognised, and an outbox replayed, only within it",
    )

    @field_validator("event_retention_hours")
    @classmethod
    def _retention_outlasts_every_repeat(cls, value: float) -> float:
        # An event can come again within the broker's duplicate window or while a consumer is
        # redelivering it; its processed id must still be there then, or it is applied twice.
        floor = pruning.minimum_window() / pruning.HOUR
        if value < floor:
            raise ValueError(
                f"{value:g} h is shorter than the minimum, {floor:g} h: the longest a consumer "
                "goes on redelivering an event (or the broker's duplicate window, if longer); "
                "an event redelivered after the window would be applied twice"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _a_known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone of the IANA database (e.g. Africa/Casablanca)"
            ) from None
        return value

    @field_validator("referral_deadlines", mode="before")
    @classmethod
    def _defaults_for_the_urgencies_not_given(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        return {**{str(k): v for k, v in DEFAULT_DEADLINES.items()}, **value}

    @model_validator(mode="after")
    def _a_member_node_is_named_after_its_organisation(self) -> Self:
        # The hub finds a member's JetStream domain by the member's organisation id.
        if self.role is NodeRole.MEMBER and self.node_id != self.org:
            raise ValueError("RELAIS_NODE_ID: a member node's id is its organisation's id")
        return self

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
    def nats_client_address(self) -> str:
        """Where clients reach the node's nats-server: ``nats_public_url``, or the services' own
        first address with its user and password taken out."""
        parts = urlsplit(self.nats_public_url or self.nats_url.split(",")[0].strip())
        host = parts.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{host}:{parts.port or 4222}"

    @property
    def quota(self) -> Quota:
        """What each organisation may hold at the hub (shared/federation.py)."""
        return Quota(
            max_bytes=self.member_stream_max_bytes,
            max_msgs=self.member_stream_max_msgs,
            max_msg_size=self.max_message_bytes,
        )

    @property
    def base_url(self) -> str:
        """Where people reach this node's pages, without a trailing slash."""
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")
