"""The reference tools the published contracts must satisfy: the AsyncAPI parser
(``@asyncapi/parser``, an npm package of package.json, installed by ``make test`` with
``npm ci``) run by node on a document, as a developer's code generator would read it."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "tests" / "tools" / "check_asyncapi.mjs"
NODE = shutil.which("node")
ERROR = 0  # the parser's severity of a problem that makes the document invalid

needs_asyncapi_parser = pytest.mark.skipif(
    NODE is None or not (ROOT / "node_modules" / "@asyncapi" / "parser").is_dir(),
    reason="node or @asyncapi/parser missing: install node and npm, then run npm ci",
)


def asyncapi_problems(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every diagnostic @asyncapi/parser gives ``document`` (severity 0: an error)."""
    assert NODE is not None
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as file:
        json.dump(document, file)
        file.flush()
        run = subprocess.run(
            [NODE, str(CHECK), file.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    verdict = json.loads(run.stdout)
    problems: list[dict[str, Any]] = verdict["diagnostics"]
    if not verdict["parsed"]:
        assert any(p["severity"] == ERROR for p in problems), "not parsed, yet no error given"
    return problems


def asyncapi_errors(document: dict[str, Any]) -> list[str]:
    """The parser's errors on ``document``, one line each (code, path, message)."""
    return [
        f"{p['code']} at {p['path']}: {p['message']}"
        for p in asyncapi_problems(document)
        if p["severity"] == ERROR
    ]
