# certfleet.pki: the two commands are `make demo` and `make test`; everything else is a step of theirs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
BUILD := $(CURDIR)/.build
LINK_ROOT := $(BUILD)/collections
VERSION := $(shell awk '/^version:/ {print $$2}' galaxy.yml)
TARBALL := $(BUILD)/dist/certfleet-pki-$(VERSION).tar.gz
export ANSIBLE_COLLECTIONS_PATH := $(LINK_ROOT)
export ANSIBLE_REMOTE_TMP := $(BUILD)/ansible-tmp
export ANSIBLE_LOCAL_TEMP := $(BUILD)/ansible-local-tmp
export ANSIBLE_NOCOLOR := 1
PYTEST := $(BIN)/python -m pytest

.PHONY: help demo test venv system-packages demo-packages collection-link build install-check lint unit integration \
        sanity bench-nightly bench-nightly-quick bench-bulk clean

help:
	@echo "make demo   create a virtualenv, install the collection and run the demo on the embedded CA"
	@echo "make test   install what the tests need and run lint, unit, integration, sanity and build checks"

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

system-packages:
	bash tests/setup/install-system-packages.sh test

demo-packages:
	bash tests/setup/install-system-packages.sh demo

collection-link:
	mkdir -p $(LINK_ROOT)/ansible_collections/certfleet
	ln -sfn $(CURDIR) $(LINK_ROOT)/ansible_collections/certfleet/pki

build: venv
	mkdir -p $(BUILD)/dist
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)/dist . >/dev/null
	@echo "built $(TARBALL)"

# The built tarball installs offline and the installed copy works (not the source tree).
install-check: build
	rm -rf $(BUILD)/installed
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed \
	    $(BIN)/ansible-galaxy collection install --offline -p $(BUILD)/installed $(TARBALL) >/dev/null
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed $(BIN)/ansible-doc certfleet.pki.client_certificate >/dev/null
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed $(BIN)/ansible-playbook -i localhost, -c local \
	    -e ansible_python_interpreter=$(BIN)/python -e certfleet_demo_dir=$(BUILD)/install-check \
	    tests/setup/installed_smoke.yml

demo: demo-packages venv build
	rm -rf $(BUILD)/demo
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/demo/collections \
	    $(BIN)/ansible-galaxy collection install --offline -p $(BUILD)/demo/collections $(TARBALL) >/dev/null
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/demo/collections $(BIN)/ansible-playbook certfleet.pki.demo \
	    -i localhost, -c local -e ansible_python_interpreter=$(BIN)/python -e certfleet_demo_dir=$(BUILD)/demo/work

lint: venv
	$(BIN)/ruff check plugins tests bench
	$(BIN)/yamllint -s .

unit: venv collection-link
	$(PYTEST) tests/unit -q

integration: venv collection-link
	$(PYTEST) tests/integration -q

sanity: venv
	$(BIN)/python tests/sanity/run_sanity.py

test: system-packages venv collection-link lint unit integration sanity install-check
	@echo "make test: all checks passed"

# The nightly-run benchmark (bench/nightly/README.md): certfleet.pki.renew against a per-identity task loop.
bench-nightly: venv collection-link
	$(BIN)/python bench/nightly/run.py

bench-nightly-quick: venv collection-link
	$(BIN)/python bench/nightly/run.py --quick

# The bulk benchmark (bench/bulk/README.md): client_certificate_requests against a task loop and the crypto floor.
bench-bulk: venv collection-link
	$(BIN)/python bench/bulk/run.py

clean:
	rm -rf $(BUILD) tests/output
