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
REPORTS := $(BUILD)/reports
# Each stage of `make test` runs through tests/setup/summary.py (exit code and time to $(REPORTS)/STAGE.json).
STAGE = $(BIN)/python tests/setup/summary.py run $(REPORTS)
# -rs: skip reasons; --durations: the slowest tests; the junit file feeds the summary at the end of `make test`.
PYTEST = $(BIN)/python -m pytest -q -rs --durations=10 --junitxml=$(REPORTS)/$@.xml
# Which system packages come first (tests/setup/install-system-packages.sh): `make demo` and `make test` set their
# list; every other target only needs python3-venv for the virtualenv.
SYSTEM_PACKAGES := venv
demo: SYSTEM_PACKAGES := demo
test: SYSTEM_PACKAGES := test

.PHONY: help demo test venv system-packages collection-link build install-check lint unit integration \
        sanity bench-nightly bench-nightly-quick bench-bulk bench-scale bench-backends bench-compare clean

help:
	@echo "make demo   create a virtualenv, install the collection and run the demo on the embedded CA"
	@echo "make test   install what the tests need and run lint, unit, integration, sanity and build checks"

# The virtualenv is created after the system packages step (python3-venv: Debian's python3 has no ensurepip).
$(BIN)/.installed: requirements.txt requirements-dev.txt | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

system-packages:
	bash tests/setup/install-system-packages.sh $(SYSTEM_PACKAGES)

collection-link:
	mkdir -p $(LINK_ROOT)/ansible_collections/certfleet
	ln -sfn $(CURDIR) $(LINK_ROOT)/ansible_collections/certfleet/pki

build: venv
	mkdir -p $(BUILD)/dist
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)/dist . >/dev/null
	@echo "built $(TARBALL)"

# The built tarball installs offline and the installed copy works (not the source tree).
install-check: build
	$(STAGE) $@ -- bash tests/setup/install-check.sh $(BIN) $(BUILD) $(TARBALL)

demo: system-packages venv build
	rm -rf $(BUILD)/demo
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/demo/collections \
	    $(BIN)/ansible-galaxy collection install --offline -p $(BUILD)/demo/collections $(TARBALL) >/dev/null
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/demo/collections $(BIN)/ansible-playbook certfleet.pki.demo \
	    -i localhost, -c local -e ansible_python_interpreter=$(BIN)/python -e certfleet_demo_dir=$(BUILD)/demo/work

# ansible-lint (.ansible-lint) lints every role, playbook and task file; it finds the collection through the link.
lint: venv collection-link
	$(STAGE) ruff -- $(BIN)/ruff check plugins tests bench
	$(STAGE) yamllint -- $(BIN)/yamllint -s .
	PATH=$(BIN):$$PATH $(STAGE) ansible-lint -- $(BIN)/ansible-lint --nocolor

unit: venv collection-link
	$(STAGE) $@ -- $(PYTEST) tests/unit tests/setup

integration: venv collection-link
	$(STAGE) $@ -- $(PYTEST) tests/integration

sanity: venv
	$(STAGE) $@ -- $(BIN)/python tests/sanity/run_sanity.py

# The stages run in order and stop at the first failure; the summary is printed either way and the exit code is
# the stages' own.
test: system-packages venv collection-link
	@rm -rf $(REPORTS)
	@rc=0; $(MAKE) --no-print-directory lint unit integration sanity install-check || rc=$$?; \
	    $(BIN)/python tests/setup/summary.py print $(REPORTS) || true; \
	    if [ $$rc -eq 0 ]; then echo "make test: all checks passed"; else echo "make test: FAILED"; fi; \
	    exit $$rc

# The nightly-run benchmark (bench/nightly/README.md): certfleet.pki.renew against a per-identity task loop.
bench-nightly: venv collection-link
	$(BIN)/python bench/nightly/run.py

bench-nightly-quick: venv collection-link
	$(BIN)/python bench/nightly/run.py --quick

# The bulk benchmark (bench/bulk/README.md): client_certificate_requests against a task loop and the crypto floor.
bench-bulk: venv collection-link
	$(BIN)/python bench/bulk/run.py

# The scale benchmark (bench/scale/README.md): per-identity operations and the CRL at 1,000 and 1,000,000 stored
# certificates, SQLite and PostgreSQL (a throw-away server; skipped, saying why, without the binaries).
bench-scale: venv collection-link
	$(BIN)/python bench/scale/run.py

# PostgreSQL against SQLite side by side: a single issue (module-like) and a bulk request file.
bench-backends: venv collection-link
	$(BIN)/python bench/backends/run.py

# Before/after (bench/compare.py): bulk and nightly --quick at small sizes on BASE and on HEAD, alternating, in one
# session; both are checked out as temporary git worktrees, removed afterwards.
BASE ?= 45dcb30
ROUNDS ?= 3
bench-compare: venv
	$(BIN)/python bench/compare.py --base $(BASE) --rounds $(ROUNDS)

clean:
	rm -rf $(BUILD) tests/output
