# Two commands: `make demo` and `make test` (see README). Everything else is a helper of theirs,
# but for production: `make web` and `make worker` (README, "In production").
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The suite runs against real services; these are the machine's defaults (override freely).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/agenther
TEST_REDIS_URL ?= redis://127.0.0.1:6379/14
# What the tests' own process needs: a key (there is no DEBUG), and plain HTTP for the test
# client. Production defaults stay on: tests that check them start processes without these.
TEST_ENV := SECRET_KEY=insecure-key-for-tests-only AGENTHER_PLAIN_HTTP=1 \
	DATABASE_URL=$(TEST_DATABASE_URL) AGENTHER_TEST_REDIS_URL=$(TEST_REDIS_URL)

.PHONY: demo test venv services lint format web migrate worker serve clean consumers

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.12 (pyenv install 3.12)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

demo: venv
	DEBUG=1 $(BIN)/python manage.py demo

serve: venv
	DEBUG=1 $(BIN)/python manage.py runserver 127.0.0.1:8000

# Production: gunicorn on PORT (default 8000) after check --deploy, collectstatic and a
# migrations check (bin/web); migrations are applied by `make migrate`, once per release.
web: venv
	bin/web

migrate: venv
	$(BIN)/python manage.py migrate

worker: venv
	$(BIN)/celery -A agenther_site worker -l info

# Starts PostgreSQL and Redis when local and stopped, installs chromium when it may.
services:
	@bin/ensure-services "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"

# The training tools the consumer tests drive (tests/consumers): TRL and LLaMA-Factory, each in
# its own pinned environment outside the app's dependencies, built once and rebuilt only when its
# requirements change (the stamp, as for the app's venv).
CONSUMER_PYTHON ?= python3.11
CONSUMERS := .consumers

consumers: $(CONSUMERS)/trl/.installed-stamp $(CONSUMERS)/llamafactory/.installed-stamp

$(CONSUMERS)/%/.installed-stamp: consumers/%/requirements.txt
	@command -v $(CONSUMER_PYTHON) >/dev/null || { echo "$(CONSUMER_PYTHON) not found: install Python 3.11 (pyenv install 3.11)"; exit 1; }
	rm -rf $(CONSUMERS)/$*
	$(CONSUMER_PYTHON) -m venv $(CONSUMERS)/$*
	$(CONSUMERS)/$*/bin/pip install --quiet --no-deps -r $<
	@touch $@

test: venv services consumers
	$(BIN)/ruff check .
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
