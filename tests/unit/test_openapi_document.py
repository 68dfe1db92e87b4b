"""The OpenAPI document a node publishes (``/openapi.json``) is valid OpenAPI, as
``openapi-spec-validator`` judges it, whatever the node's role."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from referencing.exceptions import Unresolvable

from deploy.node import build_app
from shared.settings import DEMO_SECRET, NodeRole, NodeSettings


@pytest.mark.parametrize("role", list(NodeRole))
def test_a_nodes_openapi_document_is_valid(role: NodeRole) -> None:
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
    document = build_app(settings).openapi()  # no lifespan: no servers
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
