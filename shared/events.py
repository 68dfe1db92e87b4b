"""The CloudEvents 1.0 envelope (structured JSON mode) and the registry of Relais event types.

Every event type is registered once, with the pydantic model of its ``data`` and where it
travels: across the network (``relais.net.<from>.<to>.<aggregate>.<event>``) or inside one
node (``relais.local.<service>.<event>``). The type name carries the version:
``relais.<aggregate>.<event>.v<N>``. Adding an optional field keeps the version; any other
change is a new type. Consumers ignore fields they do not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

import uuid_utils
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import Invalid

TYPE_PATTERN = re.compile(
    r"^relais\.(?P<aggregate>[a-z_]+)\.(?P<event>[a-z_]+)\.v(?P<version>\d+)$"
)
TOKEN = re.compile(r"^[a-z0-9_]+$")
BROADCAST = "all"


class Scope(StrEnum):
    NET = "net"  # crosses the network, through the hub
    LOCAL = "local"  # stays inside one node


class Payload(BaseModel):
    """Base of every event's ``data``: unknown fields are ignored, so producers may add some."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(min_length=1, description="relais://<node>/<service>")
    type: str = Field(pattern=TYPE_PATTERN.pattern)
    time: datetime
    subject: str | None = Field(default=None, description="the aggregate's id; never personal data")
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CloudEvent:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise Invalid(f"not a Relais CloudEvent: {_first_error(exc)}") from exc


P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class EventType:
    """One registered event type: its name, payload model, scope and documentation."""

    name: str
    payload: type[Payload]
    scope: Scope
    summary: str
    service: str | None = None  # a local event's one emitting service; None: any service

    @property
    def aggregate(self) -> str:
        return _parse_type(self.name)[0]

    @property
    def event(self) -> str:
        return _parse_type(self.name)[1]

    @property
    def version(self) -> int:
        return int(_parse_type(self.name)[2])

    def subject(self, *, sender: str = "", recipient: str = "", service: str = "") -> str:
        """The NATS subject this event travels on."""
        if self.scope is Scope.NET:
            for label, token in (("sender", sender), ("recipient", recipient)):
                if not TOKEN.match(token):
                    raise Invalid(f"a network event needs a {label} id", field=label)
            return f"relais.net.{sender}.{recipient}.{self.aggregate}.{self.event}"
        if not TOKEN.match(service):
            raise Invalid("a local event needs the service that emits it", field="service")
        if self.service is not None and service != self.service:
            raise Invalid(f"{self.name} is emitted by {self.service} only", field="service")
        return f"relais.local.{service}.{self.event}"

    def subject_pattern(self) -> str:
        """A wildcard subject matching every instance of this type, for consumers and docs."""
        if self.scope is Scope.NET:
            return f"relais.net.*.*.{self.aggregate}.{self.event}"
        return f"relais.local.{self.service or '*'}.{self.event}"


def _parse_type(name: str) -> tuple[str, str, str]:
    match = TYPE_PATTERN.match(name)
    if match is None:
        raise ValueError(f"event type {name!r} is not relais.<aggregate>.<event>.v<N>")
    return match["aggregate"], match["event"], match["version"]


class Registry:
    """Every event type Relais knows, by name."""

    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}

    def register(
        self, name: str, *, scope: Scope, summary: str, service: str | None = None
    ) -> Any:  # a class decorator keeping the class's own type
        """Register a type; a local event emitted by one service only names it, so that its
        consumers subscribe to exactly its subject."""
        _parse_type(name)

        def decorate(model: type[P]) -> type[P]:
            if name in self._types:
                raise ValueError(f"event type {name} is registered twice")
            self._types[name] = EventType(
                name=name, payload=model, scope=scope, summary=summary, service=service
            )
            return model

        return decorate

    def __getitem__(self, name: str) -> EventType:
        try:
            return self._types[name]
        except KeyError:
            raise Invalid(f"unknown event type {name!r}", field="type") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Any:
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def for_payload(self, model: type[Payload]) -> EventType:
        for event_type in self._types.values():
            if event_type.payload is model:
                return event_type
        raise ValueError(f"{model.__name__} is not a registered event payload")

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of every event type's ``data``, by type name."""
        return {t.name: t.payload.model_json_schema() for t in self}


registry = Registry()


def new_event_id() -> str:
    """A UUIDv7: unique, and sortable by creation time."""
    return str(uuid_utils.uuid7())


def make_event(payload: Payload, *, source: str, subject: str | None = None) -> CloudEvent:
    """Wrap a payload in a new envelope of its registered type."""
    event_type = registry.for_payload(type(payload))
    return CloudEvent(
        id=new_event_id(),
        source=source,
        type=event_type.name,
        time=datetime.now(UTC),
        subject=subject,
        data=payload.model_dump(mode="json"),
    )


def parse_payload(event: CloudEvent) -> Payload:
    """The typed ``data`` of an event; ``Invalid`` if the type is unknown or the data wrong."""
    event_type = registry[event.type]
    try:
        return event_type.payload.model_validate(event.data)
    except ValidationError as exc:
        raise Invalid(f"{event.type}: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "event"
    return f"{where}: {error['msg']}"
