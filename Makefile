# Ephemera: `make run` starts it locally, `make test` runs every test. Each installs what is
# missing for it (running needs less than testing), one line per step with its time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# DEBUG=1: `make run` also shows the workers' JSON logs, their metrics (EMF) and library warnings.
DEBUG ?=

STAGE ?= dev
export POWERTOOLS_METRICS_NAMESPACE ?= Ephemera

# Offline targets: Chalice's WebSocket handlers need a region, moto needs credentials. Never for
# the deploy targets, where dummy keys would shadow the operator's own profile.
OFFLINE_TARGETS := run test migrate expire bench chaos screenshots
$(OFFLINE_TARGETS): export AWS_DEFAULT_REGION ?= us-east-1
$(OFFLINE_TARGETS): export AWS_ACCESS_KEY_ID ?= testing
$(OFFLINE_TARGETS): export AWS_SECRET_ACCESS_KEY ?= testing

.PHONY: install install-run check-port run test lint migrate expire bench chaos clean infra deploy destroy screenshots
# Prerequisites in the order written (run checks its port before installing anything).
.NOTPARALLEL:

# One line per install step (`  web client build ... 1.4 s`); a failing step shows its output.
STEP := $(PYTHON) tools/step.py
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check --no-input
NPM_CI := npm ci --no-audit --no-fund

# What running needs; and what testing and deploying need (everything).
install-run: $(BIN)/.installed-run $(BIN)/ephemera web/dist/index.html
install: $(BIN)/.installed-test $(BIN)/ephemera tools/asyncapi/node_modules/.installed web/dist/index.html

$(BIN)/python:
	@$(STEP) "python environment ($(VENV))" $(PYTHON) -m venv $(VENV)

$(BIN)/.installed-run: requirements.txt requirements-run.txt | $(BIN)/python
	@$(STEP) "python packages for running" $(PIP_INSTALL) -r requirements-run.txt
	@touch $@

# requirements-dev.txt includes requirements-run.txt: `make run` after this installs nothing.
$(BIN)/.installed-test: requirements.txt requirements-run.txt requirements-dev.txt | $(BIN)/python
	@$(STEP) "python packages for testing" $(PIP_INSTALL) -r requirements-dev.txt
	@touch $@ $(BIN)/.installed-run

# The Python client's command, `ephemera`, linked to ephemera_client/ (edits need no reinstall);
# built with the venv's own setuptools, so nothing is downloaded for it.
$(BIN)/ephemera: pyproject.toml | $(BIN)/.installed-run
	@$(STEP) "ephemera command" $(PIP_INSTALL) --no-deps --no-build-isolation -e .

# The AsyncAPI parser validates docs/asyncapi.yaml in the tests (its CLI needs Node 24).
tools/asyncapi/node_modules/.installed: tools/asyncapi/package-lock.json
	@$(STEP) "AsyncAPI validator packages" $(NPM_CI) --prefix tools/asyncapi
	@touch $@

# The web client: its packages, then its build (what the local stack serves at `/`).
web/node_modules/.installed: web/package-lock.json
	@$(STEP) "web client packages" $(NPM_CI) --prefix web
	@touch $@

WEB_SOURCES := $(shell find web/src -type f) web/index.html web/vite.config.ts web/tsconfig.json
web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	@$(STEP) "web client build" npm run --prefix web build

# The whole stack on one port (REST, WebSocket, management API, schedule, web client), on the
# embedded SQLite database unless DATABASE_URL says otherwise. Ctrl-C stops it. A port in use
# is one sentence before anything is installed (the stack checks it again as it starts).
run: export EPHEMERA_DEBUG ?= $(DEBUG)
run: check-port install-run
	@HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m local_stack

check-port:
	@HOST=$(HOST) PORT=$(PORT) $(PYTHON) -m local_stack.port

# Each run makes its own MariaDB database (see tests/conftest.py) and drops it at the end; the
# browser tests drive Debian's chromium (`apt-get install chromium`) and fail without it.
test: install lint
	npm test --prefix web --silent
	$(BIN)/python -m pytest

# The README's pictures: three people chat on a stack of the tests' own (MariaDB, Chromium), and
# the desktop and phone screens, light and dark, are written to docs/screenshots/.
screenshots: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/screenshots.py

lint: install
	$(BIN)/ruff check .

# DATABASE_URL (and DB_SECRET_ARN outside stage local) say which database.
migrate: $(BIN)/.installed-run
	$(BIN)/python -m chalicelib.storage.migrate

# One run of the scheduled cleanup by hand (DATABASE_URL says where), figures printed.
expire: $(BIN)/.installed-run
	$(BIN)/python -m chalicelib.services.expiry

# Every benchmark, limits lifted where they are not what is measured (about 25 minutes; the
# ladder alone 8, 10,000 sockets held 3 minutes beside a bare server 10). BENCH_QUICK=1 runs
# each for a few seconds, as `make test` does.
bench: install
	$(BIN)/python -m bench.import_time
	$(BIN)/python -m bench.storage
	$(BIN)/python -m bench.round_trips
	$(BIN)/python -m bench.handler_cpu
	$(BIN)/python -m bench.handler_instructions
	$(BIN)/python -m bench.database_cpu
	$(BIN)/python -m bench.push_adapter
	$(BIN)/python -m bench.front_process
	$(BIN)/python -m bench.presence
	$(BIN)/python -m bench.send_path
	$(BIN)/python -m bench.expiry
	$(BIN)/python -m bench.limits
	$(BIN)/python -m bench.sync
	$(BIN)/python -m bench.web_client
	$(BIN)/python -m bench.fanout
	$(BIN)/python -m bench.capacity
	$(BIN)/python -m bench.sockets_held
	$(BIN)/python -m bench.ladder

# The chaos run (bench/chaos.py): clients on MariaDB under cut sockets, double sends, killed
# database connections, failing pushes, a restart and expiry, then every guarantee checked.
# It prints its seed first; SEED=<n> replays that run's choices, CHAOS_SECONDS its length.
CHAOS_SECONDS ?= 120
chaos: install
	$(BIN)/python -m bench.chaos --seconds $(CHAOS_SECONDS) $(if $(SEED),--seed $(SEED))

# AWS (docs/DEPLOY.md): `make infra` once per stage, then `make deploy` for every release.
# They use your own AWS credentials and region (profile or environment).
infra: install
	$(BIN)/python -m infra.deploy infra --stage $(STAGE)

deploy: install
	$(BIN)/python -m infra.deploy deploy --stage $(STAGE)

destroy: install
	$(BIN)/python -m infra.deploy destroy --stage $(STAGE)

clean:
	rm -rf $(VENV) .ephemera .pytest_cache .ruff_cache tools/asyncapi/node_modules web/node_modules web/dist
