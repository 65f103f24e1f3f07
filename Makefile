# The two set-up commands of the README. Both create/refresh the virtual
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

lint: env
	$(PY) -m ruff check .

test: env
	$(PY) -m pytest tests
