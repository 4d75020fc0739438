# Two commands on a fresh machine (each installs what it needs into .venv, idempotently):
#   make run    serve the embedded model on 127.0.0.1:8000 (OpenAI-compatible)
#   make test   lint, type-check and run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.alignlab-installed
PORT ?= 8000

.PHONY: run test bench install

run: $(STAMP)
	$(VENV)/bin/alignlab models pull smollm2
	$(VENV)/bin/alignlab serve --model smollm2 --port $(PORT)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy --strict src
	$(VENV)/bin/alignlab models pull smollm2
	$(PY) -m pytest -q

bench: $(STAMP)
	cd benchmarks && ../$(PY) models.py && ../$(PY) serve.py

install: $(STAMP)

# torch is pinned first so the CPU build (2.13.0) is used where it is available locally.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)
