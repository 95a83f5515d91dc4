# Ephemera: `make run` starts it locally, `make test` runs every test. Both install what is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STATE := .ephemera

# Chalice's WebSocket handlers and `chalice package` need a region; moto needs credentials.
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export POWERTOOLS_METRICS_NAMESPACE ?= Ephemera

.PHONY: install run test lint migrate bench clean

install: $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# A JWT secret for the local stage, made once and kept out of git.
$(STATE)/jwt_secret:
	mkdir -p $(STATE)
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48))" > $@

run: export STAGE := local
run: export DATABASE_URL ?= sqlite:///$(STATE)/local.db
run: export POWERTOOLS_METRICS_DISABLED ?= true
run: install $(STATE)/jwt_secret
	JWT_SECRET=$$(cat $(STATE)/jwt_secret) $(BIN)/python -m chalicelib.storage.migrate
	@echo "Ephemera (REST API) on http://$(HOST):$(PORT)/  -  try http://$(HOST):$(PORT)/health"
	JWT_SECRET=$$(cat $(STATE)/jwt_secret) $(BIN)/chalice local --stage local \
		--host $(HOST) --port $(PORT)

# Each run makes its own MariaDB database (see tests/conftest.py) and drops it at the end.
test: install lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

# DATABASE_URL (and DB_SECRET_ARN outside stage local) say which database.
migrate: install
	$(BIN)/python -m chalicelib.storage.migrate

bench: install
	$(BIN)/python -m bench.import_time
	$(BIN)/python -m bench.storage

clean:
	rm -rf $(VENV) $(STATE) .pytest_cache .ruff_cache
