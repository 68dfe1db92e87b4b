"""A node process: the services of one node behind one HTTP port (``python -m deploy.node``).

The node mounts every service's router in one FastAPI app, each service keeping its own pool,
schema, outbox relay and consumers; ``relais serve <service>`` runs a single service the same
way on a port of its own. One process per node keeps a small organisation's machine light.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from services.audit.main import service as audit
from services.auth.main import service as auth
from services.dashboard.main import service as dashboard
from services.directory.main import service as directory
from services.notifications.main import service as notifications
from services.referrals.main import service as referrals
from shared.membership.joining import NKEY_SEED_FILE, Credentials, load_or_create_nkey, nkey_public
from shared.service import Service
from shared.settings import NodeSettings
from shared.text import gettext as _
from shared.web import create_app

SERVICES: dict[str, Service] = {
    s.name: s for s in (directory, referrals, notifications, audit, dashboard)
}


def build_app(settings: NodeSettings, names: Sequence[str] | None = None) -> FastAPI:
    chosen = [SERVICES[name] for name in (names or SERVICES)]
    label = "node" if names is None else "+".join(names)
    return create_app(settings, [auth, *chosen], title=f"Relais {label} {settings.node_id}")


def load_settings(**overrides: object) -> NodeSettings:
    """The settings from the environment, or exit naming every missing or wrong one."""
    try:
        return NodeSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"  {setting_problem(e)}" for e in exc.errors()]
        print(_("relais: cannot start, bad settings:") + "\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def setting_problem(error: Any) -> str:
    """One wrong setting, named as the operator sets it; a missing one said in their language
    (pydantic's other messages name a technical rule, left as they are)."""
    name = f"RELAIS_{'_'.join(str(p) for p in error['loc']).upper() or 'SETTINGS'}"
    if error["type"] == "missing":
        return _("%(setting)s: not set") % {"setting": name}
    return f"{name}: {error['msg']}"


def credentials_problem(settings: NodeSettings) -> str | None:
    """Why a member node must not start with its credentials (issued by ``relais hub admit``),
    or ``None``: they are its organisation's, from the hub it is configured for, and valid."""
    path = settings.credentials_file
    if settings.is_hub or path is None:
        return None
    if not path.exists():
        return _("no credentials at %(path)s: the secretariat issues them (relais hub admit)") % {
            "path": path
        }
    try:
        issued = Credentials.model_validate_json(path.read_bytes())
    except ValidationError:
        return _("the credentials file %(path)s is not valid") % {"path": path}
    if issued.org_id != settings.org:
        return _("the credentials are for %(theirs)s, this node is %(ours)s") % {
            "theirs": issued.org_id,
            "ours": settings.org,
        }
    if settings.hub_address and issued.hub != settings.hub_address:
        return _(
            "this node is configured for the hub %(ours)s, but its credentials are from the hub"
            " %(theirs)s"
        ) % {"ours": settings.hub_address, "theirs": issued.hub}
    if issued.hub_domain != settings.hub_domain:
        return _("the credentials name the hub domain %(theirs)s, this node %(ours)s") % {
            "theirs": issued.hub_domain,
            "ours": settings.hub_domain,
        }
    seed = settings.key_dir / NKEY_SEED_FILE
    if seed.exists() and nkey_public(load_or_create_nkey(settings.key_dir)) != issued.nkey:
        return _(
            "the credentials are for another NATS key than this node's (%(path)s): install"
            " the ones issued for it (relais node join)"
        ) % {"path": seed}
    if issued.expired():
        return _("the credentials expired on %(when)s: ask the secretariat for new ones") % {
            "when": issued.expires_at.isoformat(timespec="minutes")
        }
    return None


def serve(settings: NodeSettings, names: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    problem = credentials_problem(settings)
    if problem is not None:
        logging.getLogger("relais.node").error("cannot join the network: %s", problem)
        print(_("relais: cannot start: %(problem)s") % {"problem": problem}, file=sys.stderr)
        raise SystemExit(2)
    app = build_app(settings, names)
    try:
        uvicorn.run(
            QuietRefusals(app),
            host=settings.http_host,
            port=settings.http_port,
            # uvloop (a dependency): the node's event loop carries every consumer, relay and
            # request; about a tenth less CPU per referral than asyncio's (make bench).
            loop="uvloop",
            log_level=settings.log_level.lower(),
            access_log=False,  # paths can carry ids; metrics count requests instead
            timeout_graceful_shutdown=5,
            server_header=False,  # no banner telling an attacker what to try
            # h11's cut-off for a request's head, above the app's own 32 kB (shared.intake),
            # which answers 431 in a problem document.
            h11_max_incomplete_event_size=64 * 1024,
        )
    except SystemExit:
        refused = app.state.refused
        if refused is None:
            raise  # uvicorn's own exit (a bug's traceback is already printed above)
        print(_("relais: cannot start: %(problem)s") % {"problem": refused}, file=sys.stderr)
        raise SystemExit(2) from None


class QuietRefusals:
    """The node's app as uvicorn runs it, minus the traceback of a known refusal to start.

    Starlette reports any exception of the lifespan to uvicorn with its traceback, which
    uvicorn prints: for a refusal (``shared.web.REFUSALS``, e.g. a changed migration file)
    that buries the one line that matters. The traceback of anything else is kept."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed" and self.app.state.refused:
                message = {**message, "message": ""}
            await send(message)

        await self.app(scope, receive, sending)


if __name__ == "__main__":
    serve(load_settings())
