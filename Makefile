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

.PHONY: env lab lab-env book pdf submission test test-fast ablations search bench browser tex clean help

# Debian packages of the PDF: TeX Live with xelatex and latexmk, the fonts Sphinx uses, pdftotext/pdftoppm for its tests
TEX_PACKAGES := texlive-xetex texlive-latex-extra texlive-fonts-recommended latexmk fonts-freefont-otf poppler-utils

help:
	@echo "make book [PROFILE=smoke|quick|full]  data -> notebooks (papermill) -> HTML in _build/html"
	@echo "make pdf [PROFILE=...]                the whole book as one PDF in _build/pdf/book.pdf (same executed notebooks)"
	@echo "make submission [ALLOW_SYNTHETIC=1]   zip the built PDF, HTML, notebooks and run records in _build/submission/"
	@echo "make test                             fresh environment, then every test (book build + browser test included)"
	@echo "make test-fast                        the fast unit tests only"
	@echo "make ablations [PROFILE=...]          train (or reuse) the study and print every claim's verdict"
	@echo "make search [PROFILE=...]             the loss-weight search over 3 seeds (cached; the ablations chapter shows it)"
	@echo "make bench                            the switch study (each performance switch) for the appendix"
	@echo "make lab                              JupyterLab with the chapters' .py sources opening as notebooks and live widgets"
	@echo "make clean                            remove the built book and executed notebooks (keeps runs/ and data/)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[book,test]' $(QUIET_PIP)
	touch $(STAMP)

env: $(STAMP)

# The `interactive` extra (JupyterLab, ipywidgets) on top of the book tools, and the lab setting that opens a
# chapter's .py source as a notebook on a double click (jupytext pairs it with notebooks/NN_name.ipynb on save).
LAB_STAMP := $(VENV)/.interactive
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_STAMP): pyproject.toml binder/overrides.json $(STAMP)
	$(BIN)/python -m pip install -q -e '.[book,test,interactive]' $(QUIET_PIP)
	mkdir -p $(dir $(LAB_SETTINGS)) && cp binder/overrides.json $(LAB_SETTINGS)
	touch $(LAB_STAMP)

lab-env: $(LAB_STAMP)

LAB_ARGS ?=
lab: lab-env
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Debian's Chromium for the browser test (no test tool downloads a browser); needs root, as on the CI machines.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package (sudo apt-get install chromium) for the browser test" >&2; fi; }

# Debian's TeX Live for the PDF; installed when run as root (as on the CI machines), else the one line to run.
tex:
	@{ command -v xelatex && command -v latexmk && command -v pdftotext && { test -e /usr/share/fonts/opentype/freefont/FreeSerif.otf || fc-list | grep -q FreeSerif; }; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; \
	  else echo "the PDF needs TeX; install it with: sudo apt-get install --no-install-recommends $(TEX_PACKAGES)" >&2; fi; }

book: env
	$(BIN)/python -m cvae book --profile $(PROFILE)

pdf: env tex
	$(BIN)/python -m cvae book --profile $(PROFILE) --pdf

# Packages what `make book` and `make pdf` built (it builds nothing); a stand-in build needs ALLOW_SYNTHETIC=1.
submission: env
	$(BIN)/python -m cvae submission $(if $(filter 1 yes true,$(ALLOW_SYNTHETIC)),--allow-synthetic) $(if $(filter 1 yes true,$(CHECKPOINTS)),--checkpoints)

test: env lab-env browser tex
	$(BIN)/python -m pytest -m "slow or not slow"

test-fast: env
	$(BIN)/python -m pytest -m "not slow"

ablations: env
	$(BIN)/python -m cvae ablate --profile $(PROFILE) --standard

search: env
	$(BIN)/python -m cvae search --profile $(PROFILE)

bench: env
	$(BIN)/python -m cvae bench --switches

clean:
	rm -rf _build report
