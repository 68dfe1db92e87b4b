"""Wiring of the audit service: its own schema (with its outbox), and so far no routes or
consumers; the foundation runs it so that its own issue fills it in without rework."""

from __future__ import annotations

from fastapi import APIRouter

from shared.service import Service, ServiceContext


async def start(ctx: ServiceContext) -> None:
    """Nothing to start yet beyond what every service gets (pool, schema, outbox relay)."""


service = Service(name="audit", router=APIRouter(), migrations=None, start=start)
