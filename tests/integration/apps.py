"""Apps of a few routers on a real database, to test one service's HTTP edge without NATS."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from shared import problems
from shared.db import Pool
from shared.service import ServiceContext
from shared.settings import DEMO_SECRET, NodeRole, NodeSettings


def node_settings(
    database_url: str, *, node_id: str = "sanad", role: NodeRole = NodeRole.MEMBER
) -> NodeSettings:
    return NodeSettings(
        node_id=node_id,
        org=node_id,
        role=role,
        nats_url="nats://127.0.0.1:1",  # these apps publish nothing
        database_url=database_url,
        secret_key=DEMO_SECRET,
        demo=True,
    )


def app_of(
    settings: NodeSettings,
    pool: Pool,
    routers: Iterable[tuple[str, APIRouter]],
    services: Iterable[str] = ("auth", "directory"),
) -> FastAPI:
    """The routers (each at its prefix) with problem details, every service on ``pool``."""
    app = FastAPI()
    problems.install(app)
    for prefix, router in routers:
        app.include_router(router, prefix=prefix)
    app.state.contexts = {
        name: ServiceContext(name=name, settings=settings, pool=pool, bus=None)  # type: ignore[arg-type]
        for name in services
    }
    return app
