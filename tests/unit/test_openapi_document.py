"""The OpenAPI document a node publishes (``/openapi.json``) is valid OpenAPI, as
``openapi-spec-validator`` judges it, whatever the node's role."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from referencing.exceptions import Unresolvable

from deploy.node import build_app
from shared.contracts.referrals import CHANGES
from shared.settings import DEMO_SECRET, NodeRole, NodeSettings


def _document(role: NodeRole) -> dict[str, Any]:
    org = "secretariat" if role is NodeRole.SECRETARIAT else "amal"
    settings = NodeSettings(
        node_id=org,
        org=org,
        role=role,
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        secret_key=DEMO_SECRET,
        demo=True,
    )
    return build_app(settings).openapi()


@pytest.mark.parametrize("role", list(NodeRole))
def test_a_nodes_openapi_document_is_valid(role: NodeRole) -> None:
    document = _document(role)  # no lifespan: no servers
    assert "/api/v1/referrals" in document["paths"]
    validate(document)  # raises, naming the first problem


def test_the_validator_would_tell_a_broken_document() -> None:
    with pytest.raises(Unresolvable, match="components/schemas/Nowhere"):
        validate(
            {
                "openapi": "3.1.0",
                "info": {"title": "t", "version": "1"},
                "paths": {
                    "/x": {
                        "get": {
                            "responses": {
                                "200": {
                                    "description": "ok",
                                    "content": {
                                        "application/json": {
                                            "schema": {"$ref": "#/components/schemas/Nowhere"}
                                        }
                                    },
                                }
                            }
                        }
                    }
                },
            }
        )


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


@pytest.mark.parametrize("role", list(NodeRole))
def test_every_error_a_route_may_answer_is_documented_as_a_problem(role: NodeRole) -> None:
    document = _document(role)
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    assert "HTTPValidationError" not in document["components"]["schemas"]  # never sent
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert {"404", "431", "503"} <= set(responses), where
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(responses), where
        for status, response in responses.items():
            if status[0] in "45":
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (where, status)
        assert "Retry-After" in responses["503"]["headers"], where


def test_guarded_routes_declare_the_bearer_token_and_open_ones_do_not() -> None:
    document = _document(NodeRole.MEMBER)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    by_route = {(m, p): o for m, p, o in _operations(document)}
    referrals = by_route[("get", "/api/v1/referrals")]
    assert referrals["security"] == [{"bearer": []}]
    assert {"401", "403", "429"} <= set(referrals["responses"])
    login = by_route[("post", "/api/v1/auth/token")]
    assert "security" not in login
    assert "403" not in login["responses"]


def test_a_history_steps_change_is_one_of_the_codes_own_list() -> None:
    change = _document(NodeRole.MEMBER)["components"]["schemas"]["HistoryOut"]["properties"]
    assert change["change"]["enum"] == list(CHANGES)
