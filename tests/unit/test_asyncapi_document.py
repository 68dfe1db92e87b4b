"""The AsyncAPI document a node publishes (``/asyncapi.json``) is one the reference parser
accepts, every schema in it resolvable, so a developer's tools can generate a client from it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

import deploy.node  # noqa: F401  (every service declares its commands on import, as a node's do)
from shared import outages
from shared.asyncapi import ErrorReply, document
from shared.bus import respond
from shared.contracts.referrals import CHANGES, ReferralChanged, Status, Urgency
from shared.errors import DomainError, Invalid, InvalidTransition, TooManyRequests
from shared.settings import DEMO_SECRET, NodeRole, NodeSettings
from tests.contract_tools import asyncapi_errors, needs_asyncapi_parser


def refs(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``$ref`` in ``node`` with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield path, value
            else:
                yield from refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from refs(value, f"{path}/{index}")


def target(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@needs_asyncapi_parser
def test_the_reference_parser_finds_no_error_in_a_nodes_document() -> None:
    assert asyncapi_errors(document()) == []


@needs_asyncapi_parser
def test_the_parser_would_tell_a_reference_to_nowhere() -> None:
    # What the document was before its schemas were hoisted: a $ref into a payload's own $defs.
    broken = copy.deepcopy(document())
    request = broken["components"]["messages"]["relais_cmd_referrals_act_request"]
    request["payload"] = {"properties": {"action": {"$ref": "#/$defs/Action"}}}
    errors = asyncapi_errors(broken)
    assert any("invalid-ref" in e and "#/$defs/Action" in e for e in errors), errors


def test_every_reference_resolves_within_the_document() -> None:
    doc = document()
    found = list(refs(doc))
    assert any(ref.startswith("#/components/schemas/") for _, ref in found)
    for where, ref in found:
        try:
            target(doc, ref)
        except KeyError:
            raise AssertionError(f"{where}: {ref} does not exist") from None
    assert '"$defs"' not in repr(doc).replace("'", '"'), "a schema keeps $defs of its own"


def test_the_list_command_takes_the_previous_pages_cursor() -> None:
    doc = document()
    request = doc["components"]["messages"]["relais_cmd_referrals_list_request"]["payload"]
    schema = target(doc, request["$ref"])
    assert "after" in schema["properties"]
    assert schema["additionalProperties"] is False


def test_the_steps_reason_codes_are_listed_in_the_document() -> None:
    doc = document()
    request = doc["components"]["messages"]["relais_cmd_referrals_act_request"]["payload"]
    reason = target(doc, request["$ref"])["properties"]["reason"]
    assert {"no_capacity", "service_provided", "sent_in_error"} <= set(reason["anyOf"][0]["enum"])


@pytest.mark.parametrize(
    "error",
    [
        InvalidTransition("cannot accept now", allowed=["withdraw"]),
        Invalid("unknown reason 'x'", field="reason"),
        outages.DependencyDown(outages.Dependency.DATABASE),
        TooManyRequests("slow down", retry_after=30),
    ],
)
async def test_an_error_reply_is_what_the_document_says(error: DomainError) -> None:
    async def handler(request: dict[str, Any]) -> None:
        raise error

    reply = await respond(handler, b"{}")
    documented = ErrorReply.model_validate(reply)  # its schema forbids any other member
    doc = document()
    replies = doc["components"]["messages"]["relais_cmd_referrals_act_reply"]["payload"]["oneOf"]
    assert {"$ref": "#/components/schemas/ErrorReply"} in replies
    assert "allowed" in doc["components"]["schemas"]["Problem"]["properties"]
    if isinstance(error, InvalidTransition):
        assert documented.error.allowed == ["withdraw"]


def test_statuses_and_urgencies_are_the_codes_own_lists() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    request = doc["components"]["messages"]["relais_cmd_referrals_create_request"]["payload"]
    urgency = target(doc, target(doc, request["$ref"])["properties"]["urgency"]["$ref"])
    assert urgency["enum"] == [u.value for u in Urgency]
    assert schemas["Status"]["enum"] == [s.value for s in Status]
    listed = target(doc, "#/components/schemas/ListBox")["properties"]["status"]["anyOf"][0]
    assert listed == {"$ref": "#/components/schemas/Status"}


def test_a_command_says_it_continues_the_callers_trace() -> None:
    messages = document()["components"]["messages"]
    request = messages["relais_cmd_referrals_create_request"]
    assert "traceparent" in request["headers"]["properties"]


def _node(role: NodeRole) -> NodeSettings:
    org = "secretariat" if role is NodeRole.SECRETARIAT else "amal"
    return NodeSettings(
        node_id=org,
        org=org,
        role=role,
        nats_url="nats://relais:secret-password@127.0.0.1:4223",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        secret_key=DEMO_SECRET,
        demo=True,
    )


@needs_asyncapi_parser
@pytest.mark.parametrize("role", list(NodeRole))
def test_each_roles_document_declares_its_nats_server_and_the_parser_accepts_it(
    role: NodeRole,
) -> None:
    doc = document(_node(role))
    assert asyncapi_errors(doc) == []
    ((name, server),) = doc["servers"].items()
    assert name == _node(role).node_id
    assert (server["protocol"], server["host"]) == ("nats", "127.0.0.1:4223")
    assert "secret-password" not in repr(doc)  # the services' login is never published
    schemes = [target(doc, s["$ref"]) for s in server["security"]]
    if role is NodeRole.MEMBER:
        # A member system logs in with an nkey: a key pair, never a password sent.
        assert [s["type"] for s in schemes] == ["asymmetricEncryption", "userPassword"]
        assert schemes[0]["x-nats-authentication"] == "nkey"
    else:
        assert [s["type"] for s in schemes] == ["userPassword"]  # no member systems there


@needs_asyncapi_parser
def test_the_parser_would_tell_a_server_asking_for_an_undeclared_login() -> None:
    broken = document(_node(NodeRole.MEMBER))
    broken["servers"]["amal"]["security"] = [{"$ref": "#/components/securitySchemes/nowhere"}]
    assert any("invalid-ref" in e and "nowhere" in e for e in asyncapi_errors(broken))


def test_the_commands_and_the_feed_say_which_login_they_take() -> None:
    doc = document()
    feed = doc["operations"]["receive_member_system_feed"]["security"]
    assert [target(doc, s["$ref"])["type"] for s in feed] == ["asymmetricEncryption"]
    create = doc["operations"]["answer_relais_cmd_referrals_create"]["security"]
    assert {"#/components/securitySchemes/memberSystemNkey"} <= {s["$ref"] for s in create}


def test_a_referrals_change_is_one_of_the_codes_own_list() -> None:
    schemas = document()["components"]["schemas"]
    assert schemas["ReferralChanged"]["properties"]["change"]["enum"] == list(CHANGES)
    assert schemas["HistoryOut"]["properties"]["change"]["enum"] == list(CHANGES)
    assert {s.value for s in Status} <= set(CHANGES)
    with pytest.raises(ValidationError, match="unknown change"):
        ReferralChanged.model_validate(
            {"referral": {}, "change": "teleported", "by_org": "amal", "at": "2026-01-01T00:00Z"}
        )
