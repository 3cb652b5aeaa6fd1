# opsportal: `make run` starts the portal, `make test` runs the checks and the test suite.
# Both work on a machine with only Python 3.11: SQLite and Celery's filesystem broker are the defaults,
# DATABASE_URL / CELERY_BROKER_URL switch to PostgreSQL and Redis.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
CELERY := $(VENV)/bin/celery
HOST ?= 127.0.0.1
PORT ?= 8000
QUEUES := default,billing,telemetry,forecasts,alerts,notifications
# `make run` and its steps use development mode unless the caller says otherwise; tests use their own settings.
run demo migrate web worker beat: export DJANGO_DEBUG ?= 1

.PHONY: run test install migrate demo web worker beat lint format check-migrations clean help

help:
	@echo "make run    - install, migrate, load the demo and start web + Celery worker + beat"
	@echo "make test   - lint, migration check and the test suite"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

web: install
	$(PY) manage.py runserver $(HOST):$(PORT)

worker: install
	$(CELERY) -A opsportal worker -Q $(QUEUES) --loglevel=INFO --concurrency=2 --without-gossip --without-mingle

beat: install
	$(CELERY) -A opsportal beat --loglevel=INFO

run: demo
	@echo ""
	@echo "  opsportal is starting at http://$(HOST):$(PORT)/"
	@echo "  Demo logins (password: opsportal-demo):"
	@echo "    cfo, cio   Executive"
	@echo "    pm, pm2    Product manager"
	@echo "    admin      Admin"
	@echo "  Stop with Ctrl-C."
	@echo ""
	@trap 'kill 0' EXIT INT TERM; \
	  $(CELERY) -A opsportal worker -Q $(QUEUES) --loglevel=INFO --concurrency=2 --without-gossip --without-mingle & \
	  $(CELERY) -A opsportal beat --loglevel=INFO & \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Models against migrations: no database needed (an empty one in memory, so that the history check that
# makemigrations runs finds nothing to warn about on a machine without the portal's own database).
check-migrations: install
	DATABASE_URL=sqlite://:memory: DJANGO_SETTINGS_MODULE=opsportal.settings.test $(PY) manage.py makemigrations --check --dry-run

test: lint check-migrations
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf var/broker var/test-*.sqlite3*
