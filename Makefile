# Two commands: `make run` (set up, then start the app) and `make test` (set up, then run the test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test bench bench-full
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-assets.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --no-deps -r requirements-assets.txt
	touch $@

run: setup
	$(PY) app.py

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m benchmarks --quick

bench-full: setup
	$(PY) -m benchmarks --full
