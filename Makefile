# Relais: `make run` starts the demo network, `make test` runs every check and test.
# Both set up .venv first (Python 3.11+), installing the pinned dependencies.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint format bench chaos clean setup browser

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/relais demo

test: check browser
	$(BIN)/python -m pytest

# The browser tests drive Debian's Chromium; as root on Debian it is installed here when missing.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	  || echo "note: no /usr/bin/chromium; the browser tests will say how to install it"

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy shared services deploy tests
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# The chaos suite's full run (~25 min): python -m tests.chaos --help for a shorter one.
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos

lock:
	$(BIN)/python -m pip freeze --exclude-editable --exclude relais > requirements.lock

clean:
	rm -rf .relais bench-results .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
