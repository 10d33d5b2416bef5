# kadmium — one entry point for newcomers and CI.
#   make demo   set everything up and run a local network doing real puts and gets
#   make test   set everything up and run every test (what .ci/run calls)
#
# Each component adds a `test-<name>` target below and lists it in TEST_TARGETS.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(abspath $(VENV))/bin/python
CARGO ?= cargo
export KADMIUM_PYTHON := $(PY)

TEST_TARGETS := lint test-rust

.PHONY: all demo test setup lint test-rust $(TEST_TARGETS)

all: setup
	$(CARGO) build --release --workspace

# --- setup: everything a fresh machine of this kind needs --------------------
setup: $(VENV)/.stamp
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

$(VENV)/.stamp: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# --- checks -------------------------------------------------------------------
lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

test-rust: setup
	$(CARGO) test --workspace --release

test: setup
	$(MAKE) $(TEST_TARGETS)
	@echo "make test: all test targets passed ($(TEST_TARGETS))"

demo: setup
	$(CARGO) run --release -p dht-core --example demo
