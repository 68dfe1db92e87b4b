"""The AsyncAPI 3.0 document of every subject Relais uses: the events (from the event
registry) and the request/reply commands a node answers (``relais.cmd.<service>.<action>``,
declared by the services with ``command``).

Every model's JSON Schema comes from pydantic in one pass (``models_json_schema``), so the
schemas they share are written once, under ``components/schemas``, and every ``$ref`` points
there: a schema pasted with its own ``$defs`` would leave refs no AsyncAPI tool can resolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared import feed, outages
from shared.events import CloudEvent, Scope, registry

if TYPE_CHECKING:
    from shared.settings import NodeSettings

SCHEMAS = "#/components/schemas/"
Wanted = tuple[type[BaseModel], JsonSchemaMode]


@dataclass(frozen=True)
class Command:
    subject: str
    request: type[BaseModel]
    reply: type[BaseModel] | None  # None: documented in the summary
    summary: str


COMMANDS: dict[str, Command] = {}
# A command authenticated by a token spends the token's request budget, the one its HTTP
# requests spend too (``api_requests_per_minute``).
RATE_LIMITED = (
    "Past the token's request rate (the same budget as its HTTP requests), the typed error "
    "/problems/too-many-requests (status 429) with retry_after: the seconds before the token "
    "has room again; nothing was done."
)


class Problem(BaseModel):
    """A typed error: the problem details the HTTP API gives for the same mistake."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="/problems/<kind>", examples=["/problems/invalid"])
    title: str
    status: int = Field(description="the HTTP status the same mistake gets")
    detail: str
    field: str | None = Field(default=None, description="the request's field at fault")
    allowed: list[str] | None = Field(
        default=None,
        description="with /problems/invalid-transition: the actions the referral's state "
        "allows now (possibly none)",
    )
    dependency: outages.Dependency | None = Field(
        default=None, description="with /problems/unavailable: what was unavailable"
    )
    retry_after: int | None = Field(
        default=None,
        description="when the error is transient (/problems/too-many-requests, "
        "/problems/unavailable): seconds before trying again",
    )


class ErrorReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: Problem


def command(
    subject: str, request: type[BaseModel], reply: type[BaseModel] | None, summary: str
) -> None:
    """Declare a request/reply subject a service answers, for the AsyncAPI document."""
    COMMANDS[subject] = Command(subject, request, reply, summary)


def _schemas(wanted: list[Wanted]) -> tuple[dict[Wanted, dict[str, Any]], dict[str, Any]]:
    """Each wanted model's schema (a ``$ref`` into ``components/schemas``), and those schemas."""
    unique = list(dict.fromkeys(wanted))
    keyed, top = models_json_schema(unique, ref_template=SCHEMAS + "{model}")
    return {(model, mode): keyed[(model, mode)] for model, mode in unique}, top.get("$defs", {})


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return dict(defs[ref.removeprefix(SCHEMAS)]) if ref.startswith(SCHEMAS) else schema


def _commands(
    channels: dict[str, Any],
    operations: dict[str, Any],
    messages: dict[str, Any],
    schema: dict[Wanted, dict[str, Any]],
) -> None:
    for cmd in sorted(COMMANDS.values(), key=lambda c: c.subject):
        key = cmd.subject.replace(".", "_")
        result = (
            schema[(cmd.reply, "serialization")]
            if cmd.reply is not None
            else {"description": cmd.summary}
        )
        messages[f"{key}_request"] = {
            "name": f"{cmd.subject} request",
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    "traceparent": {
                        "type": "string",
                        "description": "W3C trace context (optional): the command and every "
                        "event it causes continue this trace",
                    }
                },
            },
            "payload": schema[(cmd.request, "validation")],
        }
        messages[f"{key}_reply"] = {
            "name": f"{cmd.subject} reply",
            "contentType": "application/json",
            **({"description": RATE_LIMITED} if "token" in cmd.request.model_fields else {}),
            "payload": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"result": result},
                        "required": ["result"],
                        "additionalProperties": False,
                    },
                    schema[(ErrorReply, "serialization")],
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
            "security": [
                {"$ref": f"#/components/securitySchemes/{CLIENT_NKEY}"},
                {"$ref": f"#/components/securitySchemes/{SERVICES_LOGIN}"},
            ],
            "messages": [{"$ref": f"#/channels/{key}/messages/request"}],
            "reply": {
                "channel": {"$ref": f"#/channels/{key}"},
                "messages": [{"$ref": f"#/channels/{key}/messages/reply"}],
            },
        }


def _wanted() -> list[Wanted]:
    """Every model the document shows, in the mode it travels in: what a node accepts
    (requests, and events, which consumers validate) and what it sends (replies)."""
    wanted: list[Wanted] = [(CloudEvent, "validation"), (ErrorReply, "serialization")]
    wanted += [(event_type.payload, "validation") for event_type in registry]
    for cmd in COMMANDS.values():
        wanted.append((cmd.request, "validation"))
        if cmd.reply is not None:
            wanted.append((cmd.reply, "serialization"))
    return wanted


def document(
    node: NodeSettings | None = None, *, title: str = "Relais events", version: str = "1"
) -> dict[str, Any]:
    """The document; with ``node``, the node's nats-server as its server, and the logins it
    takes."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schema, defs = _schemas(_wanted())
    envelope = _resolve(schema[(CloudEvent, "validation")], defs)
    for event_type in registry:
        key = event_type.name.replace(".", "_")
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
                "title": f"{event_type.payload.__name__} event",
                "properties": {
                    **envelope["properties"],
                    "type": {"const": event_type.name},
                    "data": schema[(event_type.payload, "validation")],
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
    _commands(channels, operations, messages, schema)
    _feed(channels, operations)
    made: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": "CloudEvents 1.0 (structured JSON) over NATS JetStream.",
        },
    }
    if node is not None:
        made["servers"] = servers(node)
    return made | {
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": defs,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


SERVICES_LOGIN = "servicesLogin"
CLIENT_NKEY = "memberSystemNkey"
SECURITY_SCHEMES: dict[str, Any] = {
    SERVICES_LOGIN: {
        "type": "userPassword",
        "description": "The node's own services: the user and password of their RELAIS_NATS_URL "
        "(shared/nats_users.py), with every right. Never given to a member system.",
    },
    # AsyncAPI 3.0 has no type for a public-key challenge: the nearest is an asymmetric key
    # pair, which is what an nkey is; userPassword or apiKey would tell a tool to send a secret.
    CLIENT_NKEY: {
        "type": "asymmetricEncryption",
        "description": "A member-system client (relais client create, or the administrator's "
        "page /admin/clients): a NATS nkey, an Ed25519 key pair. The server holds only the "
        "public key (U...); at connection it sends a nonce, which the client signs with its "
        "seed (SU..., shown once at creation; nats-py nkeys_seed, nats.js nkeyAuthenticator): "
        "no secret crosses the wire, and nothing is encrypted by this key. It may only request "
        "relais.cmd.> with replies on its own inbox _INBOX.<client>.> and read its own feed "
        f"consumer {feed.FEED}.<client>; anything else is a permissions violation. Each "
        "request also carries the client's API token in its token field, which says what the "
        "system may do in the organisation's name.",
        "x-nats-authentication": "nkey",
    },
}


def servers(node: NodeSettings) -> dict[str, Any]:
    """The node's own nats-server, and who may log in to it."""
    address = node.nats_client_address
    scheme, _, host = address.partition("://")
    if node.is_hub:
        # The hub's nats-server is the network's: its services and the members' leaf links
        # (their own accounts). Member-system clients belong on their organisation's node.
        description = (
            "The hub's nats-server, for the hub's own services; member organisations' nodes "
            "link to it as leaf nodes. Member systems connect to their own organisation's node."
        )
        security = [{"$ref": f"#/components/securitySchemes/{SERVICES_LOGIN}"}]
    else:
        description = (
            f"This organisation's own nats-server ({node.org}): its member systems' clients "
            "log in with their nkey; the node's services with their own user."
        )
        security = [
            {"$ref": f"#/components/securitySchemes/{CLIENT_NKEY}"},
            {"$ref": f"#/components/securitySchemes/{SERVICES_LOGIN}"},
        ]
    if scheme == "tls":
        description += " TLS is required."
    return {
        node.node_id: {
            "host": host,
            "protocol": "nats",
            "title": f"The nats-server of node {node.node_id}",
            "description": description,
            "security": security,
        }
    }


FEED_DESCRIPTION = f"""A member system's own event feed: the organisation's referral events
(what changed, status, ids, category, urgency, deadlines; never the person's data), kept for
each client in a durable pull consumer named after it on the node's `{feed.FEED}` stream (kept
{feed.RETENTION.days} days). Whatever the client has not acknowledged waits for it across its
own restarts and those of the node's nats-server and of the node. Delivery is at least once:
acknowledge each message (`$JS.ACK.{feed.FEED}.{{client}}.>`, what the clients' `ack()` sends)
within {int(feed.ACK_WAIT.total_seconds())} s, and tell a redelivery by the CloudEvent `id`
(also the `Nats-Msg-Id` header). The client may use only its own consumer:
`$JS.API.CONSUMER.INFO.{feed.FEED}.{{client}}` and
`$JS.API.CONSUMER.MSG.NEXT.{feed.FEED}.{{client}}`, the messages arriving on its own inbox
(`_INBOX.{{client}}.>`).

nats-py: `sub = await nc.jetstream().pull_subscribe_bind("{{client}}", stream="{feed.FEED}")`,
then `for msg in await sub.fetch(20, timeout=2): ...; await msg.ack()`.
nats.js: `const c = await nc.jetstream().consumers.get("{feed.FEED}", "{{client}}")`, then
`for await (const m of await c.fetch({{max_messages: 20, expires: 2000}})) {{ ...; m.ack() }}`.
The whole loop: examples/python_client.py and examples/js_client.mjs."""


def _feed(channels: dict[str, Any], operations: dict[str, Any]) -> None:
    carried = [
        t for t in registry if t.scope is Scope.LOCAL and t.subject_pattern() in feed.SUBJECTS
    ]
    channels["member_system_feed"] = {
        "address": f"$JS.API.CONSUMER.MSG.NEXT.{feed.FEED}.{{client}}",
        "title": "A member system's event feed",
        "description": FEED_DESCRIPTION,
        "parameters": {"client": {"description": "the member-system client's name"}},
        "messages": {
            t.name.replace(".", "_"): {"$ref": f"#/components/messages/{t.name.replace('.', '_')}"}
            for t in carried
        },
    }
    operations["receive_member_system_feed"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/member_system_feed"},
        "summary": "Pull the organisation's referral events, acknowledging each",
        "security": [{"$ref": f"#/components/securitySchemes/{CLIENT_NKEY}"}],
    }
