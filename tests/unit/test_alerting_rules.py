"""The Prometheus alerting rules are valid and fire when they should (``promtool``, from the
Debian package ``prometheus``, which .ci/run installs); that every metric they and the Grafana
dashboard name exists on a real node is tests/e2e/test_metrics.py's job."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "relais.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_the_rules_are_valid() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@needs_promtool
def test_the_rules_fire_on_the_series_they_are_about() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_tells_the_operator_what_to_do() -> None:
    text = (PROMETHEUS / "alerts.yml").read_text()
    alerts = text.count("- alert: ")
    assert alerts >= 15
    assert text.count("summary: ") == alerts
    assert text.count("deploy/README.md") >= alerts


def test_the_dashboards_panels_each_query_something() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["targets"] and all("relais_" in t["expr"] for t in panel["targets"]), panel
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
