"""The AsyncAPI 3.0 document of every subject Relais uses: the events (from the event
registry) and the request/reply commands a node answers (``relais.cmd.<service>.<action>``,
declared by the services with ``command``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from shared.events import CloudEvent, Scope, registry


@dataclass(frozen=True)
class Command:
    subject: str
    request: type[BaseModel]
    reply: type[BaseModel] | None  # None: documented in the summary
    summary: str


COMMANDS: dict[str, Command] = {}
ERROR_REPLY = {
    "type": "object",
    "description": "a typed error: the problem details the HTTP API gives for the same mistake",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        }
    },
}


def command(
    subject: str, request: type[BaseModel], reply: type[BaseModel] | None, summary: str
) -> None:
    """Declare a request/reply subject a service answers, for the AsyncAPI document."""
    COMMANDS[subject] = Command(subject, request, reply, summary)


def _commands(
    channels: dict[str, Any], operations: dict[str, Any], messages: dict[str, Any]
) -> None:
    for cmd in sorted(COMMANDS.values(), key=lambda c: c.subject):
        key = cmd.subject.replace(".", "_")
        result = (
            cmd.reply.model_json_schema() if cmd.reply is not None else {"description": cmd.summary}
        )
        messages[f"{key}_request"] = {
            "name": f"{cmd.subject} request",
            "contentType": "application/json",
            "payload": cmd.request.model_json_schema(),
        }
        messages[f"{key}_reply"] = {
            "name": f"{cmd.subject} reply",
            "contentType": "application/json",
            "payload": {
                "oneOf": [
                    {"type": "object", "properties": {"result": result}, "required": ["result"]},
                    ERROR_REPLY,
                ]
            },
        }
        channels[key] = {
            "address": cmd.subject,
            "description": "on the node's own NATS; request/reply",
            "messages": {
                "request": {"$ref": f"#/components/messages/{key}_request"},
                "reply": {"$ref": f"#/components/messages/{key}_reply"},
            },
        }
        operations[f"answer_{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": cmd.summary,
            "messages": [{"$ref": f"#/channels/{key}/messages/request"}],
            "reply": {
                "channel": {"$ref": f"#/channels/{key}"},
                "messages": [{"$ref": f"#/channels/{key}/messages/reply"}],
            },
        }


def document(*, title: str = "Relais events", version: str = "1") -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    envelope = CloudEvent.model_json_schema()
    for event_type in registry:
        key = event_type.name.replace(".", "_")
        data_schema = event_type.payload.model_json_schema()
        messages[key] = {
            "name": event_type.name,
            "title": event_type.payload.__name__,
            "summary": event_type.summary,
            "contentType": "application/cloudevents+json",
            "headers": {
                "type": "object",
                "properties": {
                    "Nats-Msg-Id": {"type": "string", "description": "the event id (dedup)"},
                    "traceparent": {"type": "string", "description": "W3C trace context"},
                },
            },
            "payload": {
                **envelope,
                "properties": {
                    **envelope["properties"],
                    "type": {"const": event_type.name},
                    "data": data_schema,
                },
            },
        }
        if event_type.scope is Scope.NET:
            address = (
                f"relais.net.{{sender}}.{{recipient}}.{event_type.aggregate}.{event_type.event}"
            )
            parameters = {
                "sender": {"description": "the sending organisation's id"},
                "recipient": {"description": "the receiving organisation's id, or 'all'"},
            }
        elif event_type.service is not None:
            address = f"relais.local.{event_type.service}.{event_type.event}"
            parameters = {}
        else:
            address = f"relais.local.{{service}}.{event_type.event}"
            parameters = {"service": {"description": "the service that emits it"}}
        channels[key] = {
            "address": address,
            "parameters": parameters,
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
        }
        operations[f"send_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": event_type.summary,
        }
    _commands(channels, operations, messages)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": "CloudEvents 1.0 (structured JSON) over NATS JetStream.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
