# Two commands on a fresh machine (each installs what it needs into .venv, idempotently):
#   make run    the guarded assistant: the embedded model behind the default guard on 127.0.0.1:8000
#   make test   lint, type-check and run the tests (installs headless Chromium for the page test)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.alignlab-installed
PORT ?= 8000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench install browser

run: $(STAMP)
	$(VENV)/bin/alignlab models pull smollm2
	$(VENV)/bin/alignlab serve --model smollm2 --guard default --port $(PORT)

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy --strict src
	$(PY) benchmarks/figures.py --check
	$(VENV)/bin/alignlab models pull smollm2
	$(PY) -m pytest -q

bench: $(STAMP)
	cd benchmarks && ../$(PY) models.py && ../$(PY) serve.py && ../$(PY) guard_load.py

install: $(STAMP)

# Debian's Chromium and its driver, for the chat page test in a real browser.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver)

# torch is pinned first so the CPU build (2.13.0) is used where it is available locally.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)
