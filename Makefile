# Beeldbel: `make run` starts everything on this machine, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test system-deps lint typecheck certs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/beeldbel run

certs: install
	$(BIN)/beeldbel certs dev

# Debian's Chromium (never a downloaded browser), axe-core from npm, iproute2 for
# the loopback-only network namespace the tests run in, coturn for the relay test.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v turnserver >/dev/null || missing="$$missing coturn"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@[ -f node_modules/axe-core/axe.min.js ] || npm ci --no-audit --no-fund --silent

# The whole suite runs in a network namespace that has only loopback, so no test
# traffic (ICE gathers every interface address) can leave this machine.
# PostgreSQL is reached there through its unix socket.
test: install-test system-deps
	unshare --net sh -c 'ip link set lo up && exec $(BIN)/pytest'

lint: install-test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install-test
	$(BIN)/mypy common controlplane mediaserver cli certs

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
