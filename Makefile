# Quick start: `make run` serves on :8887, `make test` runs the whole suite.
# Both create .venv from the pinned requirements on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet
HOST   ?= 127.0.0.1
PORT   ?= 8887
PYTEST_ARGS ?=

.PHONY: install install-train install-dev settings-doc run test lint check-terraform bench capacity cost container-smoke model openapi clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "botscore needs Python 3.11+, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e .
	@touch $@

# The training tools need no root: the apt installs below serve the tests only.
$(VENV)/.train: requirements-train.txt train/pyproject.toml $(VENV)/.runtime
	$(PIP) install -r requirements-train.txt
	$(PIP) install --no-deps -e ./train
	@touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.train | /usr/bin/chromium /usr/bin/javac /usr/bin/bindfs
	$(PIP) install -r requirements-dev.txt
	@touch $@

# The client examples' test runs docs/clients/BotScore.java with the JDK's single-file launcher.
/usr/bin/javac:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless

# The browser test drives Debian's Chromium (Playwright's own browser download is not used).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The fencing test mounts one folder twice with bindfs (FUSE): two hosts whose locks are not shared.
/usr/bin/bindfs:
	apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq bindfs

## install: create .venv with the runtime dependencies and the `botscore` command
install: $(VENV)/.runtime

## install-train: add botscore-train (train/): `botscore train`, `import-model`, `make-data`; no root, no apt
install-train: $(VENV)/.train

## install-dev: add botscore-train (train/), the test and the checking tools
install-dev: $(VENV)/.dev

## run: serve the API on $(HOST):$(PORT) with embedded defaults (audit records under var/audit)
run: install
	$(BIN)/botscore serve --host $(HOST) --port $(PORT)

## lint: ruff (lint and format) and mypy (strict) over the code and the tests
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then the whole suite; starts every server it needs (SeaweedFS S3, the service) by itself
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	bash scripts/check-terraform.sh --no-pytest

## check-terraform: terraform fmt, checkov (zero failures) and the config-agrees-with-app tests
check-terraform: install-dev
	bash scripts/check-terraform.sh

# make bench serves botscore from a venv with the runtime requirements only, as the image has them: in
# the dev venv urllib3 and botocore also import brotli and certifi, which the image does not hold.
RUNTIME := .venv-runtime
$(RUNTIME)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(RUNTIME)
	$(RUNTIME)/bin/python -m pip --disable-pip-version-check --quiet install -r requirements.txt
	$(RUNTIME)/bin/python -m pip --disable-pip-version-check --quiet install --no-deps -e .
	@touch $@

## bench: botscore against the stack's ceiling (not part of make test); writes docs/performance.md
bench: install-dev $(RUNTIME)/.installed
	@command -v wrk >/dev/null && command -v hey >/dev/null || \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk hey)
	$(BIN)/python bench/run.py

## capacity: req/s per Fargate task size at p99 < 10 and < 200 ms, open loop, in cgroups (root; not part of make test); writes docs/capacity.md
capacity: install-dev
	$(BIN)/python bench/capacity.py

## cost: the bill per month and per million requests at 600 and 3,000 req/s (measures one task's storage calls
## with EFS-like fsyncs under strace, then prices them); writes docs/cost.json and docs/cost.md (not part of make test)
cost: install-dev
	@command -v strace >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace)
	$(BIN)/python bench/cost.py

## container-smoke: build the image with buildah and prove it with podman (root; see README "Docker")
container-smoke:
	bash scripts/container-smoke.sh

## model: regenerate the dataset and retrain the shipped model and its card (deterministic)
model: install-train
	$(BIN)/botscore make-data --replace-shipped
	$(BIN)/botscore train --output src/botscore/model/bot-score.json --replace-shipped

## openapi: write docs/openapi.json, the document the service serves at /openapi.json (for client generators)
openapi: install-dev
	$(BIN)/python scripts/write-openapi.py

## settings-doc: write docs/settings.md from the settings' descriptions in src/botscore/settings.py
settings-doc: install
	$(BIN)/python scripts/write-settings-doc.py

clean:
	rm -rf $(VENV) $(RUNTIME) .pytest_cache .hypothesis var test-artifacts *.egg-info
