"""The OpenAPI document as a member system's developer reads it: FastAPI's own, completed with
what every route may answer besides its success, so that a generated client expects it.

FastAPI documents a route's success and its 422; the rest of what a node answers comes from
layers around the handlers, the same for every route: the intake (``shared.intake``: 400 for a
body that does not parse, 413, 431), the guards (``shared.auth.guards``: 401, 403, and 429 for a
token past its rate), the dependencies (503 with ``Retry-After`` while the database or the
broker is down) and the lookups (404). Each is added here, once, from the route's own shape
(does it take a body, is it guarded), every error with the problem-details schema it really has.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from shared.auth.guards import guarded_routes
from shared.problems import MEDIA_TYPE

SCHEME = "bearer"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class FieldError(BaseModel):
    field: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details, as ``shared.problems`` writes them."""

    type: str = Field(description="stable: /problems/<slug>", examples=["/problems/invalid"])
    title: str
    status: int
    detail: str = Field(description="for people; never personal data")
    field: str | None = Field(default=None, description="the input at fault, when there is one")
    errors: list[FieldError] | None = Field(default=None, description="every field at fault")
    allowed: list[str] | None = Field(default=None, description="the values that would do")
    retry_after: int | None = Field(default=None, description="seconds (also Retry-After)")
    limit: int | None = Field(default=None, description="the body limit, in bytes (413)")


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
# What each layer answers, and when it applies to a route.
ALWAYS = {
    404: "no such object here (or a route this node's role does not serve)",
    431: "too many request headers, or too large",
    503: "the database or the broker is down for now: retry after Retry-After",
}
WITH_BODY = {
    400: "a body that does not parse",
    413: "a body larger than this route accepts",
    422: "input that breaks a rule: the field at fault is named",
}
GUARDED = {
    401: "no token, or one that is invalid, expired or revoked",
    403: "the caller's role or organisation may not do this",
    429: "the token is past its rate: retry after Retry-After",
}


def install(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, on first request)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                routes=app.routes,
                webhooks=app.webhooks.routes,
                servers=app.servers,
            )
            guarded = {(r.method, r.path) for r in guarded_routes(app.routes) if r.requirements}
            complete(schema, guarded)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def complete(schema: dict[str, Any], guarded: set[tuple[str, str]]) -> None:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(_problem_schemas())
    components["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (rls_…), from POST /api/v1/auth/token or the admin",
        }
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            answers = dict(ALWAYS)
            if "requestBody" in operation or operation.get("parameters"):
                answers[422] = WITH_BODY[422]
            if "requestBody" in operation:
                answers |= WITH_BODY
            if (method.upper(), path) in guarded:
                operation["security"] = [{SCHEME: []}]
                answers |= GUARDED
            for status, description in answers.items():
                responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = {MEDIA_TYPE: {"schema": PROBLEM_REF}}
                    if status in ("429", "503"):
                        response["headers"] = RETRY_AFTER
    # FastAPI's own 422 body is never sent (shared.problems answers instead): not documented.
    components["schemas"].pop("HTTPValidationError", None)
    components["schemas"].pop("ValidationError", None)


def _problem_schemas() -> dict[str, Any]:
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = problem.pop("$defs", {})
    return {"Problem": problem, **defs}
