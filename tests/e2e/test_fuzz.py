"""Fuzzing every node role's API as a member system's generated client would be fuzzed:
schemathesis reads each node's ``/openapi.json`` and sends what it documents, and what it does
not (strange strings, missing fields, wrong types), with every role's token. Nothing may answer
5xx, and every answer must be one the document declares, in the shape it declares.

A network of its own: the fuzzer disables users, revokes tokens and edits records, which the
session's network must not inherit. On each node the admin goes last (it may revoke the others'
tokens; their later answers would be 401s, documented but no longer exploring).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.conftest import network_of_its_own, user

# Bounded so the run stays a couple of minutes on a 2-CPU machine: a few examples per operation
# and per role, every operation of every role's document.
EXAMPLES_PER_OPERATION = 5
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)
ROLES = {
    "hub": ("coordinator", "auditor", "admin"),
    "sanad": ("caseworker", "focal_point", "admin"),
}


@pytest.fixture(scope="module")
async def fuzzed_network() -> AsyncIterator[dict[str, Any]]:
    async with network_of_its_own(("sanad",), "relais-fuzz-") as (_, creds):
        yield creds


async def fuzz(url: str, token: str) -> tuple[int, str]:
    """One schemathesis run on a node's document with a token; its exit code and its report.
    In a folder of its own: hypothesis keeps its example database in the working folder."""
    with tempfile.TemporaryDirectory(prefix="relais-fuzz-run-") as folder:
        return await _run_in(folder, url, token)


async def _run_in(folder: str, url: str, token: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "20261203",  # the same cases on every run: a failure is reproducible
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--no-color",
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


@pytest.mark.parametrize("node", list(ROLES))
async def test_no_input_breaks_a_node_nor_gets_an_undocumented_answer(
    fuzzed_network: dict[str, Any], node: str
) -> None:
    url = fuzzed_network["nodes"][node]["url"]
    for role in ROLES[node]:
        token = user(fuzzed_network, node, role)["token"]
        code, report = await fuzz(url, token)
        assert code == 0, f"{node} as {role}:\n{report[-8000:]}"
        assert " generated" in report, report[-2000:]  # it really sent cases
