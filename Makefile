# Bandeja: `make demo` runs the whole system against the local Microsoft 365 stand-in;
# `make test` runs the checks CI runs. Both set up everything on a fresh machine.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=
# Test processes side by side: the suite mostly waits on real servers and service
# processes, and each worker gets its own stand-in, database and vhost.
PYTEST_WORKERS ?= 2

.PHONY: setup system-packages lint test unit audit demo bench chaos clean

# The AsyncAPI project's parser (npm), pinned by its lock file, checks docs/asyncapi.yaml.
ASYNCAPI_TOOLS := tools/asyncapi/node_modules/.package-lock.json

setup: system-packages $(STAMP) $(ASYNCAPI_TOOLS)

system-packages:
	@bash scripts/install-system-packages.sh

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,standin,bench]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(ASYNCAPI_TOOLS): tools/asyncapi/package-lock.json
	npm ci --prefix tools/asyncapi --no-audit --no-fund --ignore-scripts

lint: setup
	$(VENV)/bin/ruff check common services standin tests bench scripts
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -m 'not chaos' -n $(PYTEST_WORKERS) --durations=10 $(PYTEST_ARGS)

audit: setup
	$(PY) -m scripts.audit_dependencies

unit: setup
	$(PY) -m pytest tests/unit -q

demo: setup
	DEMO_EXCHANGE=$(EXCHANGE) $(PY) -m scripts.demo

bench: setup
	$(PY) -m bench.run

chaos: setup
	$(PY) -m tests.chaos.run $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tools/asyncapi/node_modules
