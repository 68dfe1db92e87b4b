"""The notifications service's own settings (prefix ``RELAIS_``), beside the node's."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotificationSettings(BaseSettings):
    """How this node reaches people: its SMTP server, its SMS gateway, webhook rules, retries."""

    model_config = SettingsConfigDict(env_prefix="RELAIS_", extra="ignore")

    smtp_host: str | None = Field(default=None, description="no e-mail is sent without one")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    mail_from: str = Field(default="relais@localhost", pattern=r"^[^@\s]+@[^@\s]+$")
    sms_gateway_url: str | None = Field(
        default=None, description="an HTTP endpoint taking {to, text}; no SMS without one"
    )
    sms_gateway_token: str | None = None
    webhook_allowed_networks: list[str] = Field(
        default_factory=list,
        description="private, loopback or link-local networks webhooks may still reach "
        '(CIDRs, e.g. ["10.0.0.0/8"]); every other such address is refused',
    )
    retry_base: float = Field(default=30.0, gt=0, description="first retry delay, seconds")
    retry_cap: float = Field(default=3600.0, gt=0, description="longest retry delay, seconds")
    retry_window: float = Field(
        default=24 * 3600.0, gt=0, description="how long a delivery is retried, seconds"
    )
    webhook_max_failures: int = Field(
        default=25, ge=1, description="consecutive failed attempts before a webhook is disabled"
    )
    send_timeout: float = Field(default=10.0, gt=0)
    worker_poll: float = Field(default=2.0, gt=0)
    # In the node's zone: NodeSettings.timezone (RELAIS_TIMEZONE), the one the pages use too.
    digest_hour: int = Field(default=18, ge=0, le=23, description="when digests go, local time")

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @property
    def mail_configured(self) -> bool:
        return self.smtp_host is not None

    @property
    def sms_configured(self) -> bool:
        return self.sms_gateway_url is not None
