"""A node process: the services of one node behind one HTTP port (``python -m deploy.node``).

The node mounts every service's router in one FastAPI app, each service keeping its own pool,
schema, outbox relay and consumers; ``relais serve <service>`` runs a single service the same
way on a port of its own. One process per node keeps a small organisation's machine light.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from services.audit.main import service as audit
from services.dashboard.main import service as dashboard
from services.directory.main import service as directory
from services.notifications.main import service as notifications
from services.referrals.main import service as referrals
from shared.auth import service as auth
from shared.service import Service
from shared.settings import NodeSettings
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
        lines = [
            f"  RELAIS_{'_'.join(str(p) for p in e['loc']).upper() or 'SETTINGS'}: {e['msg']}"
            for e in exc.errors()
        ]
        print("relais: cannot start, bad settings:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def serve(settings: NodeSettings, names: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(settings, names)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,  # paths can carry ids; metrics count requests instead
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    serve(load_settings())
