# The set-up commands of the README. demo and test create/refresh the virtual
# environment first (idempotent; set BIPA_WHEELHOUSE to offer prebuilt wheels).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bipa-env

.PHONY: env demo lint test

env: $(STAMP)

$(STAMP): requirements.txt requirements/constraints.txt requirements/tests.txt setup.py tools/install/setup_env.sh tools/install/build_mmcv.py
	bash tools/install/setup_env.sh $(VENV)
	touch $(STAMP)

# make demo DEMO_ARGS=--rebuild-sam pre-trains the shipped tiny SAM again
DEMO_ARGS ?=

demo: env
	$(PY) tools/demo.py $(DEMO_ARGS)

# make lint needs ruff alone, at the version requirements/tests.txt pins: the
# ruff on PATH when it is that version, else one installed in its own small
# venv (LINT_VENV), not the whole environment
PYTHON ?= python3
LINT_VENV ?= .venv-lint
RUFF_VERSION := $(shell sed -n 's/^ruff==//p' requirements/tests.txt)
ifeq ($(shell ruff --version 2>/dev/null),ruff $(RUFF_VERSION))
RUFF := ruff
else
RUFF := $(LINT_VENV)/bin/ruff
endif

lint: $(filter $(LINT_VENV)/%,$(RUFF))
	$(RUFF) check .

$(LINT_VENV)/bin/ruff: requirements/tests.txt
	[ -x $(LINT_VENV)/bin/python ] || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	    $(if $(BIPA_WHEELHOUSE),--find-links $(BIPA_WHEELHOUSE)) ruff==$(RUFF_VERSION)
	touch $@

test: env
	$(PY) -m pytest -n 2 --dist loadfile tests
