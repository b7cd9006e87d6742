# Self-bootstrapping targets: each builds the virtual environment first if it is missing or stale.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip's notes about absent local index folders are noise on the CI machines; real errors still fail the build
QUIET_PIP := 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

.PHONY: env book test test-fast ablations bench browser clean help

help:
	@echo "make book [PROFILE=smoke|quick|full]  data -> notebooks (papermill) -> HTML in _build/html"
	@echo "make test                             fresh environment, then every test (book build + browser test included)"
	@echo "make test-fast                        the fast unit tests only"
	@echo "make ablations [PROFILE=...]          train (or reuse) the standard ablation set"
	@echo "make bench                            training throughput against the conventional pipeline"
	@echo "make clean                            remove the built book and executed notebooks (keeps runs/ and data/)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[book,test]' $(QUIET_PIP)
	touch $(STAMP)

env: $(STAMP)

# Debian's Chromium for the browser test (no test tool downloads a browser); needs root, as on the CI machines.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package (sudo apt-get install chromium) for the browser test" >&2; fi; }

book: env
	$(BIN)/python -m cvae book --profile $(PROFILE)

test: env browser
	$(BIN)/python -m pytest -m "slow or not slow"

test-fast: env
	$(BIN)/python -m pytest -m "not slow"

ablations: env
	$(BIN)/python -m cvae ablate --profile $(PROFILE) --standard

bench: env
	$(BIN)/python -m cvae bench

clean:
	rm -rf _build report
