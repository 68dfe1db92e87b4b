"""A node process as an operator starts it: bad settings are named, one service runs alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from deploy.network import Network
from deploy.ports import free_ports
from deploy.processes import ProcessSpec, Supervisor
from shared.settings import DEMO_SECRET

ROOT = Path(__file__).parents[2]


def start_node(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    return subprocess.run(
        [sys.executable, "-m", "deploy.node"],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_missing_setting_stops_start_up_naming_it() -> None:
    result = start_node({"RELAIS_NODE_ID": "sanad", "RELAIS_ORG": "sanad"})
    assert result.returncode == 2
    assert "RELAIS_NATS_URL" in result.stderr
    assert "RELAIS_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_settings_are_named_in_the_operators_language() -> None:
    result = start_node({"RELAIS_NODE_ID": "sanad", "RELAIS_ORG": "sanad", "RELAIS_LANG": "ar"})
    assert result.returncode == 2
    assert result.stderr.startswith("relais: تعذّر التشغيل، إعدادات غير صحيحة:")
    assert "RELAIS_NATS_URL: غير محدَّد" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_demo_secret_is_refused_outside_the_demo() -> None:
    result = start_node(
        {
            "RELAIS_NODE_ID": "sanad",
            "RELAIS_ORG": "sanad",
            "RELAIS_NATS_URL": "nats://x",
            "RELAIS_DATABASE_URL": "postgresql://x",
            "RELAIS_SECRET_KEY": DEMO_SECRET,
            "RELAIS_HTTP_PORT": "not-a-port",
        }
    )
    assert result.returncode == 2
    assert "RELAIS_HTTP_PORT" in result.stderr
    assert "demo's secret" in result.stderr


@pytest.fixture
async def directory_alone(network: Network, database_url: str) -> AsyncIterator[str]:
    (port,) = free_ports(1)
    hub = network.hub
    env = {
        "RELAIS_NODE_ID": hub.node_id,
        "RELAIS_ORG": hub.org,
        "RELAIS_ROLE": "secretariat",
        "RELAIS_NATS_URL": hub.nats_url,
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_SECRET_KEY": "a-secret-of-this-test-only-0123456789",
    }
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"{url}/readyz")).status_code == 200

    supervisor = Supervisor()
    spec = ProcessSpec(
        "directory-alone",
        [str(Path(sys.executable).parent / "relais"), "serve", "directory", "--port", str(port)],
        network.root / "logs" / "directory-alone.log",
        env=env,
        ready=ready,
        ready_timeout=60,
    )
    await supervisor.start(spec)
    yield url
    await supervisor.stop_all()


async def test_one_service_runs_alone_on_its_own_port(directory_alone: str) -> None:
    async with httpx.AsyncClient(base_url=directory_alone) as client:
        paths = set((await client.get("/openapi.json")).json()["paths"])
        assert (await client.get("/api/v1/directory/organisations")).status_code == 401
    assert any(p.startswith("/api/v1/directory/") for p in paths)
    assert not any(p.startswith(("/api/v1/referrals/", "/api/v1/audit/")) for p in paths)
