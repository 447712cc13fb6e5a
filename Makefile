# Beeldbel: `make run` starts everything on this machine, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test build-deps system-deps pdf-deps node-deps sanitize lint typecheck certs clean

$(BIN)/python: | build-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# setup.py builds the media server's C path (gcc); a change to it rebuilds
$(VENV)/.installed: pyproject.toml setup.py $(wildcard mediaserver/fastpath/*) | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py $(wildcard mediaserver/fastpath/*) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install pdf-deps
	$(BIN)/beeldbel run

certs: install
	$(BIN)/beeldbel certs dev

# A C compiler and the Python headers for the media server's C path.
build-deps:
	@command -v gcc >/dev/null || { echo "installing gcc from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev; }
	@$(PYTHON) -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		|| { echo "installing the Python headers from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-dev; }

# Debian's Chromium and Firefox ESR (never a downloaded browser), iproute2 for
# the loopback-only network namespace the tests run in, coturn for the relay
# test, redis-server for the tests' own Redis (inside the namespace; the
# machine's Redis is outside it), prometheus for the alert rules' tests
# (promtool) and a real scrape of a call.
system-deps: node-deps pdf-deps
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v firefox-esr >/dev/null || missing="$$missing firefox-esr"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v turnserver >/dev/null || missing="$$missing coturn"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# What WeasyPrint loads to lay out the pilot report as PDF: Pango (with its
# FreeType back end; GLib, HarfBuzz and fontconfig come with it), HarfBuzz's
# subsetter for smaller fonts, and a font (DejaVu).
pdf-deps:
	@missing=""; \
	ldconfig -p | grep -q 'libpangoft2-1.0.so.0' || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	ldconfig -p | grep -q 'libharfbuzz-subset.so.0' || missing="$$missing libharfbuzz-subset0"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# From npm (package-lock.json): axe-core for the accessibility checks, TypeScript's
# checker for the front end's JSDoc types, and lucide-static, whose icons
# scripts/vendor_icons.py copies into web/static/icons (the test compares them).
node-deps:
	@command -v npm >/dev/null || { echo "installing npm from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	@[ -f node_modules/axe-core/axe.min.js ] && [ -x node_modules/.bin/tsc ] && [ -d node_modules/lucide-static/icons ] || npm ci --no-audit --no-fund --silent

# The whole suite runs in a network namespace that has only loopback, so no test
# traffic (ICE gathers every interface address) can leave this machine.
# PostgreSQL is reached there through its unix socket.
test: install-test system-deps
	unshare --net sh -c 'ip link set lo up && exec $(BIN)/pytest'

# the media server's C path under ASan and UBSan (after changing mediaserver/fastpath/)
sanitize: install-test
	scripts/sanitize_fastpath.sh

lint: install-test node-deps
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	node_modules/.bin/tsc -p web

typecheck: install-test
	$(BIN)/mypy beeldbel controlplane mediaserver tests bench scripts examples

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
