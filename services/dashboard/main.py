"""Wiring of the dashboard: its pages at the root of the node; no JSON API and no tables of its
own (the runtime still gives it the schema, pool and outbox relay every service gets)."""

from __future__ import annotations

from fastapi import APIRouter

from services.dashboard import labels
from services.dashboard.pages import pages
from shared.service import Service, ServiceContext


async def start(ctx: ServiceContext) -> None:
    """The pages work per request; they only need the node's zone to tell the time in."""
    labels.use_zone(ctx.settings.timezone)


service = Service(name="dashboard", router=APIRouter(), migrations=None, start=start, pages=pages)
