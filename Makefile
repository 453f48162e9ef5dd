# Bandeja: `make demo` runs the whole system against the local Microsoft 365 stand-in;
# `make test` runs the checks CI runs. Both set up everything on a fresh machine.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
# Test processes side by side: the suite mostly waits on real servers and service
# processes, and each worker gets its own stand-in, database and vhost. Three on two
# cores, with work stealing so no worker idles while another holds the long e2e tests:
# 6:01 of pytest against 7:43 with two, one run each (README.md, "Tests").
PYTEST_WORKERS ?= 3

.PHONY: setup system-packages lint test unit audit lock image demo screenshots bench chaos clean

# The AsyncAPI project's parser (npm), pinned by its lock file, checks docs/asyncapi.yaml.
ASYNCAPI_TOOLS := tools/asyncapi/node_modules/.package-lock.json

setup: system-packages $(STAMP) $(ASYNCAPI_TOOLS)

system-packages:
	@bash scripts/install-system-packages.sh

# The runtime dependencies at the versions the image installs (requirements.lock, without
# its hashes: the editable install and the test tools cannot be hash-checked).
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	grep -E '^[a-z0-9]' requirements.lock | sed 's/ \\$$//' > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e '.[test,standin,bench]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(ASYNCAPI_TOOLS): tools/asyncapi/package-lock.json
	npm ci --prefix tools/asyncapi --no-audit --no-fund --ignore-scripts

lint: setup
	$(VENV)/bin/ruff check common services standin tests bench scripts
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -m 'not chaos' -n $(PYTEST_WORKERS) --dist worksteal --durations=10 $(PYTEST_ARGS)

# Audits requirements.lock, what the image installs (not this virtualenv).
audit: setup
	$(PY) -m scripts.audit_dependencies

# Re-resolve requirements.lock (hash-pinned, for the image and CI) after a dependency
# change in pyproject.toml; review and commit the diff. Resolves against PyPI itself, not
# this machine's local wheel directories, so the hashes are the published ones.
LOCK_INDEX ?= https://pypi.org/simple
lock: setup
	$(PY) -m pip install -q pip-tools
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(VENV)/bin/pip-compile --quiet --generate-hashes \
	  --allow-unsafe --strip-extras --build-deps-for wheel --index-url $(LOCK_INDEX) \
	  --output-file requirements.lock pyproject.toml

# Build the container image without registry access (scripts/build-image.sh); needs root
# and `apt-get install buildah podman runc debootstrap`. IMAGE=... names the result.
IMAGE ?= localhost/bandeja:dev
image:
	IMAGE=$(IMAGE) bash scripts/build-image.sh

unit: setup
	$(PY) -m pytest tests/unit -q

demo: setup
	DEMO_EXCHANGE=$(EXCHANGE) $(PY) -m scripts.demo

# Refresh docs/status-page.png (the README's picture) from the browser test's own run.
screenshots: setup
	BANDEJA_SCREENSHOTS_DIR=$(CURDIR)/docs $(PY) -m pytest -q -p no:cacheprovider \
	  tests/e2e/test_browser_status.py::test_status_page_shows_a_revoked_mailbox_turn_needs_reauth

bench: setup
	$(PY) -m bench.run

# Then the image: built here (make image) and every role run from it as the manifests run
# it (tests/e2e/test_image.py; root, buildah, podman, runc, debootstrap).
chaos: setup
	$(PY) -m tests.chaos.run $(CHAOS_ARGS)
	$(PY) -m pytest -m image -q -p no:cacheprovider --durations=5 tests/e2e/test_image.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tools/asyncapi/node_modules
