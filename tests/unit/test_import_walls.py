"""The import-linter walls (pyproject.toml) really hold: a copy of the tree with a deliberate
breach fails ``lint-imports``, naming the contract, and the same copy without it passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")
DOMAIN_WALL = "Domain code imports no I/O package"


def tree(to: Path) -> Path:
    """The packages and the contracts, copied (Python files only)."""
    for package in ("shared", "services", "deploy"):
        shutil.copytree(ROOT / package, to / package, ignore=_not_python)
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")
    return to


def _not_python(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if not (n.endswith(".py") or (Path(folder) / n).is_dir())}


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def breach(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


@pytest.fixture(scope="module")
def copied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tree(tmp_path_factory.mktemp("walls"))


def test_the_copied_tree_keeps_every_contract(copied: Path) -> None:
    result = lint(copied)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # Directly: the example.
        ("services/referrals/domain.py", "from shared import bus, db  # noqa"),
        # Indirectly: the accounts' store is no I/O module by name, but it reaches the database.
        ("services/notifications/domain.py", "from shared.auth import store  # noqa"),
        ("shared/auth/domain.py", "import shared.outbox  # noqa"),
    ],
)
def test_a_domain_module_that_reaches_io_breaks_the_domain_wall(
    tmp_path: Path, module: str, line: str
) -> None:
    root = tree(tmp_path)
    breach(root / module, line)
    result = lint(root)
    assert result.returncode != 0
    assert f"{DOMAIN_WALL} BROKEN" in result.stdout, result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "services/auth/api.py",
            "import services.dashboard  # noqa",
            "Services never import each other",
        ),
        (
            "shared/membership/joining.py",
            "import services.directory.hub_server  # noqa",
            "The shared library knows no service and no deployment",
        ),
        (
            "services/directory/hub_server.py",
            "import deploy.tls  # noqa",
            "Services know no deployment",
        ),
    ],
)
def test_a_module_that_reaches_into_another_room_breaks_its_wall(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = tree(tmp_path)
    breach(root / module, line)
    result = lint(root)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout
