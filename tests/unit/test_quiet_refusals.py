"""A node's start that fails: a known refusal (a changed migration file) reaches uvicorn
without its traceback, so its one line is what the operator reads; any other failure keeps
its traceback, which shows where the bug is. Played through the ASGI lifespan protocol, as
uvicorn speaks it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from deploy.node import QuietRefusals
from shared.db import Migration, MigrationChanged


def failing_app(error: Exception, *, known: bool) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if known:  # as shared.web's lifespan marks a refusal
            app.state.refused = str(error)
        raise error
        yield

    app = FastAPI(lifespan=lifespan)
    app.state.refused = None
    return app


async def start(app: FastAPI) -> dict[str, Any]:
    """What the app tells uvicorn when asked to start."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pytest.raises((MigrationChanged, KeyError)):  # Starlette re-raises what it reported
        await QuietRefusals(app)({"type": "lifespan", "state": {}}, receive, send)
    (message,) = sent
    return message


async def test_a_known_refusal_reaches_uvicorn_without_its_traceback() -> None:
    migration = Migration("directory/0001_init", Path("0001_init.sql"), sql="", checksum="1" * 64)
    refusal = MigrationChanged("directory", migration, "0" * 64)
    message = await start(failing_app(refusal, known=True))
    assert message["type"] == "lifespan.startup.failed"
    assert message["message"] == ""


async def test_any_other_failure_keeps_its_traceback() -> None:
    message = await start(failing_app(KeyError("a bug"), known=False))
    assert message["type"] == "lifespan.startup.failed"
    assert "Traceback" in message["message"] and "KeyError" in message["message"]
