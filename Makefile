# Relais: `make run` starts the demo network, `make test` runs every check and test.
# Both set up .venv first (Python 3.11+), installing the pinned dependencies.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test check lint format bench chaos chaos-cluster clean setup tools

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/relais demo

test: check tools $(NODE_STAMP)
	$(BIN)/python -m pytest

# The JavaScript tools of package.json (pinned in package-lock.json): @asyncapi/parser reads
# every node's /asyncapi.json in the tests. No install scripts run (none of them needs one).
$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	  else echo "note: npm missing; the AsyncAPI parser tests say how to install it"; fi

# Debian's Chromium (the browser tests drive it), promtool, of Debian's prometheus package
# (it checks deploy/prometheus/alerts.yml), and npm with node (the AsyncAPI parser); as root on
# Debian they are installed here when missing.
tools:
	@missing=""; test -x /usr/bin/chromium || missing="chromium"; \
	  command -v promtool >/dev/null || missing="$$missing prometheus"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  test -z "$$missing" || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } \
	  || echo "note: missing $$missing; the tests that need them say how to install them"

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

# The same with the hub as three clustered nats-servers (R3), one of them killed or paused.
chaos-cluster: $(STAMP)
	$(BIN)/python -m tests.chaos --hub-cluster

lock:
	$(BIN)/python -m pip freeze --exclude-editable --exclude relais > requirements.lock

clean:
	rm -rf .relais bench-results node_modules .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
