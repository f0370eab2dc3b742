# meshproof: the two commands are `make conformance` and `make test`.
# Each sets itself up on a fresh machine (venv, Debian packages, npm allure).

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
TARGET  ?= local
MESH    ?= reference
DEFECT  ?=
TESTS   ?=
REPORTS ?= reports
PYTEST_K := $(if $(TESTS),-k "$(TESTS)",)

.PHONY: help setup venv host conformance test test-full bench up down status clean

help:
	@echo "make conformance   run the conformance suite against TARGET=$(TARGET) MESH=$(MESH)"
	@echo "make test          the project's own tests (CI tier, < 15 min on 2 cores)"
	@echo "make test-full     nightly tier: the whole defect x check matrix"
	@echo "make bench         benchmarks: lab, reference mesh, toxiproxy (reports/bench/*.json)"
	@echo "make up|down|status  the lab by hand; make setup: install everything"

setup: venv host

# The venv is rebuilt when the lock file changes.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -r requirements.lock
	@$(PY) -m pip install -q --no-deps -e .
	@touch $@

host:
	@bash scripts/setup-host.sh

conformance: setup
	@bash scripts/require-root.sh "make conformance"
	@mkdir -p $(REPORTS)
	$(PY) -m pytest conformance $(PYTEST_K) --junitxml=$(REPORTS)/junit.xml \
	  --alluredir=$(REPORTS)/allure-results --clean-alluredir -p no:cacheprovider

test: setup
	@bash scripts/require-root.sh "make test"
	$(PY) -m pytest tests conformance -m "not slow" $(PYTEST_K) -p no:cacheprovider

test-full: setup
	@bash scripts/require-root.sh "make test-full"
	$(PY) -m pytest tests conformance $(PYTEST_K) -p no:cacheprovider

bench: setup
	@bash scripts/require-root.sh "make bench"
	$(PY) benchmarks/lab_bench.py
	$(PY) benchmarks/mesh_bench.py
	$(PY) benchmarks/toxiproxy_bench.py --rounds 10

up: setup
	$(VENV)/bin/meshproof up --target $(TARGET) $(if $(DEFECT),--defect $(DEFECT),)
down:
	$(VENV)/bin/meshproof down --target $(TARGET)
status:
	$(VENV)/bin/meshproof status --target $(TARGET)

clean:
	rm -rf $(REPORTS) .pytest_cache
