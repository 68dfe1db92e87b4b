"""How the operator's commands (``relais deadletters``, ``relais outbox``) reach a running node:
its HTTP API, as one of its administrators.

The work is done by the node itself (a redelivery runs the consumer's own handler, which only
the node process has), so these commands need what any administrator needs: the node's address
and an administrator's bearer token. Give ``--url`` and ``--token`` (or ``RELAIS_URL`` and
``RELAIS_TOKEN``), or ``--user`` to log in with a password typed at the prompt, or ``--node``
with a credentials file shaped like the demo's (``relais status`` reads the same file).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import httpx
import typer

from shared.text import gettext as _

MOROCCO = ZoneInfo("Africa/Casablanca")
DEMO_CREDENTIALS = Path(".relais/demo/credentials.json")

Url = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="RELAIS_URL", help="the node (default http://127.0.0.1:RELAIS_HTTP_PORT)"
    ),
]
Token = Annotated[
    str | None, typer.Option("--token", envvar="RELAIS_TOKEN", help="an administrator's token")
]
User = Annotated[
    str | None, typer.Option("--user", help="log in as this administrator (password asked)")
]
NodeId = Annotated[
    str | None, typer.Option("--node", help="a node of a credentials file (the demo's)")
]
CredentialsFile = Annotated[
    Path, typer.Option("--credentials", help="the credentials file, for --node")
]
AsJson = Annotated[bool, typer.Option("--json", help="output for scripts")]


@dataclass(frozen=True)
class Target:
    url: str
    token: str


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, err=True, fg="red")
    raise typer.Exit(code)


def target(
    url: str | None, token: str | None, user: str | None, node: str | None, credentials: Path
) -> Target:
    """Where the node is and the token to call it with, from the options given."""
    if node is not None:
        if not credentials.exists():
            fail(_("relais: no %(path)s; is `relais demo` running?") % {"path": credentials}, 2)
        nodes = json.loads(credentials.read_text())["nodes"]
        if node not in nodes:
            fail(
                _("relais: no node %(node)s; choose one of %(nodes)s")
                % {"node": node, "nodes": ", ".join(nodes)},
                2,
            )
        admin = next((u for u in nodes[node]["users"] if u["role"] == "admin"), None)
        if admin is None:
            fail(
                _("relais: the credentials file has no administrator of %(node)s") % {"node": node},
                2,
            )
        return Target(nodes[node]["url"].rstrip("/"), admin["token"])
    address = (url or f"http://127.0.0.1:{os.environ.get('RELAIS_HTTP_PORT', '8000')}").rstrip("/")
    if token:
        return Target(address, token)
    if user:
        password = (
            sys.stdin.readline().rstrip("\r\n")
            if not sys.stdin.isatty()
            else typer.prompt(_("Password"), hide_input=True)
        )
        answer = _request(
            "POST", f"{address}/api/v1/auth/token", None, {"username": user, "password": password}
        )
        return Target(address, str(answer["access_token"]))
    fail(_("relais: give --token (or RELAIS_TOKEN), --user, or --node"), 2)


def call(where: Target, method: str, path: str, body: Any = None, **params: Any) -> Any:
    """The node's JSON answer; a refusal or an unreachable node ends the command with its
    reason (exit 1 for a refusal, 2 if the node cannot be reached)."""
    return _request(method, f"{where.url}{path}", where.token, body, params)


def _request(
    method: str, url: str, token: str | None, body: Any = None, params: dict[str, Any] | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(
            method, url, headers=headers, json=body, params=params, timeout=600
        )
    except httpx.HTTPError as error:
        fail(
            _("relais: cannot reach the node at %(url)s: %(error)s") % {"url": url, "error": error},
            2,
        )
    if response.status_code in (401, 403):
        fail(_("relais: the node refused the token: an administrator's token is needed"), 1)
    if response.status_code >= 400:
        try:
            detail = str(response.json().get("detail") or response.reason_phrase)
        except ValueError:
            detail = response.reason_phrase
        fail(
            _("relais: the node refused (%(status)s): %(detail)s")
            % {"status": response.status_code, "detail": detail},
            1,
        )
    return response.json() if response.content else None


def local_time(value: str | None) -> str:
    """A time the API sent (ISO 8601), as it reads in Morocco: ``2026-12-02 15:20:03``."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(MOROCCO).strftime("%Y-%m-%d %H:%M:%S")


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
