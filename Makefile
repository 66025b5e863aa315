# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
# The suite runs twice: on SQLite, then on this PostgreSQL (trust auth).
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/voice
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint chromium bench

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demouser
	@echo "Serving http://$(HOST):$(PORT)/ (Ctrl+C stops)"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# The browser tests drive Debian's chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: install chromium
	$(BIN)/ruff check .
	env -u DATABASE_URL $(BIN)/python -m pytest
	@echo "--- the same suite on PostgreSQL (the deployment tests always use it) ---"
	DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest -m "not deployment"

lint: install
	$(BIN)/ruff check .

# Prints tables and writes docs/benchmarks.md with plots (a few minutes).
bench: install
	$(BIN)/python -m bench
