# riskflow — two commands on a fresh machine: `make demo` and `make test`.
# Every target that needs the environment runs `setup` first; setup is idempotent.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RISKFLOW := $(BIN)/riskflow
BROKER := deploy/kafka/broker.sh
# Installed-state stamp: redone when the dependency declarations change.
STAMP := $(VENV)/.riskflow-installed
DEMO_DIR ?= data/demo
PYTEST_ARGS ?=

.PHONY: constraints help setup venv browser promtool check-install kafka-fetch broker-start broker-stop broker-status demo test test-unit lint bench clean

help:  ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: venv kafka-fetch  ## Create .venv, install riskflow + pinned deps, fetch Apache Kafka

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "riskflow needs Python >= 3.11; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch: a CPU wheel found on this machine (pip's find-links) wins; else PyPI's default build.
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

# The report test opens report.html in headless Chromium. Debian's package is
# installed when missing and we may (root or passwordless sudo); otherwise the
# test says how to get it (and fails under CI=true instead of skipping).
browser:  ## Install Debian's Chromium for the report rendering test (if missing)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
	    echo "make: chromium not found and no root: the report rendering test will skip (apt-get install chromium)"; exit 0; fi; \
	  echo "make: installing Debian's chromium for the report rendering test"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	  || echo "make: could not install chromium; the report rendering test will skip"; }

# promtool (Prometheus' rule checker and rule unit-test runner) for the alert
# tests: extracted from Debian's prometheus package into .cache/prometheus,
# without installing it (no service is started). Needs apt's package lists.
PROMTOOL := .cache/prometheus/usr/bin/promtool
promtool:  ## Extract promtool from Debian's prometheus package (for the alert-rule tests)
	@command -v promtool >/dev/null 2>&1 || test -x $(PROMTOOL) || { \
	  mkdir -p .cache/prometheus && cd .cache/prometheus && \
	  { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; } && \
	  dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb && echo "make: promtool in $(PROMTOOL)" \
	  || echo "make: could not fetch Debian's prometheus package; the promtool tests will skip (fail under CI)"; }

# The Dockerfile's install steps outside Docker (no image registry here): a
# throwaway venv from PyPI, then the image's smoke test. Slow (torch).
check-install:  ## Run deploy/docker/Dockerfile's install steps in a temp venv and smoke-test it
	deploy/docker/check_install.sh

kafka-fetch:  ## Fetch Apache Kafka's jars through Maven (cached in .cache/kafka)
	@$(BROKER) fetch

broker-start: kafka-fetch  ## Start the local single-node KRaft broker (no-op if running)
	@$(BROKER) start

broker-stop:  ## Stop the local broker
	@$(BROKER) stop

broker-status:
	@$(BROKER) status

demo: setup broker-start  ## Broker up, simulated history, model trained if absent, worker + live stream + live view, replay report
	deploy/demo.sh

# CI runs this on a clean clone with no services running: it installs, starts
# the broker, runs every test, and stops the broker again if it started it.
test: setup browser promtool  ## Install, start the broker, run all tests (unit + real-broker integration)
	@started=0; \
	if ! $(BROKER) status >/dev/null 2>&1; then $(BROKER) start || exit 1; started=1; fi; \
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then $(BROKER) stop; fi; \
	exit $$rc

test-unit: venv  ## Unit tests only (no broker)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: venv  ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy riskflow features models policies streams

bench: setup broker-start  ## All benchmarks, JSON lines (stream needs the local broker)
	$(RISKFLOW) bench simulate --json
	$(RISKFLOW) bench features --json
	$(RISKFLOW) bench models --json
	$(RISKFLOW) bench rules --json
	$(RISKFLOW) bench replay --json
	$(RISKFLOW) bench stream --json

clean:  ## Remove generated data, models and the local broker's state (keeps .venv and jars)
	-$(BROKER) stop
	rm -rf data artifacts state out deploy/kafka/.runtime

constraints: venv  ## Re-pin constraints.txt to what .venv has (after changing dependencies)
	{ echo "# Versions CI tested (pip freeze of .venv). Regenerate: make constraints"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^riskflow'; } > constraints.txt
