# Listening workbench. `make help` lists the targets.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: help setup setup-dev run test test-fast lint format bench demo check

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup:  ## create/refresh .venv and system packages for running the app
	@scripts/setup.sh

setup-dev:  ## same, plus test tools and Chromium for browser tests
	@scripts/setup.sh --dev

run: setup  ## serve the app on http://127.0.0.1:7860 (demo catalog if no models)
	$(PY) app.py $(ARGS)

test: setup-dev  ## run the whole test suite (unit, integration, browser)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup-dev  ## logic tests only (no server, browser, subprocess, model or load test): the edit-test loop
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)  # cached bytecode: a few seconds less per run

lint: setup-dev  ## ruff lint + format check + mypy (settings in pyproject.toml)
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

format: setup-dev  ## apply ruff formatting and safe fixes
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

bench: setup-dev  ## run every benchmark in bench/ and print one table
	$(PY) -m bench

check: setup  ## validate checkpoints.yaml and show availability
	$(PY) -m workbench check

demo: setup  ## regenerate the bundled demo clips with espeak-ng
	$(PY) demo/make_demo.py
