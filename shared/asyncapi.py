"""The AsyncAPI 3.0 document of every subject Relais uses, generated from the event registry."""

from __future__ import annotations

from typing import Any

from shared.events import CloudEvent, Scope, registry


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
