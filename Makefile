# The two commands a new user needs:  make run  (set up, start the service)  and  make test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: run test install install-test system-deps checkov bench lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Installs are stamped per extra and redone when pyproject.toml changes.
$(VENV)/.stamp-run: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -qq -e '.[api,worker]'
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -qq -e '.[test]'
	touch $@

install: $(VENV)/.stamp-run
install-test: $(VENV)/.stamp-test

# checkov (tests/deploy/test_k8s.py) in a venv of its own: it pins packaging 23 and networkx 2.6, below
# what the project's venv has (torch needs networkx).
TOOLS := .venv-tools
CHECKOV := checkov==3.3.30
$(TOOLS)/.stamp: Makefile
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip --disable-pip-version-check install -qq '$(CHECKOV)'
	touch $@
checkov: $(TOOLS)/.stamp

# System packages the tests use, from Debian: Chromium for the browser tests (Playwright's own browser
# download needs the internet), docker-compose to validate docker-compose.yml (no engine needed) and HAProxy,
# run in front of API replicas by tests/deploy.
system-deps:
	@missing=""; test -x /usr/bin/chromium || missing="chromium"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	test -x /usr/sbin/haproxy || missing="$$missing haproxy"; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# Migrations and the first-start imports are explicit steps; both are idempotent, so `make run` twice is fine.
run: install
	$(PY) -m cxr db upgrade
	$(PY) -m cxr bootstrap
	$(PY) -m cxr serve

test: install-test system-deps checkov
	$(PY) -m pytest

lint: install-test
	$(VENV)/bin/lint-imports

bench: install-test
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(TOOLS) var runs .pytest_cache
