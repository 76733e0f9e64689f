# flexyboots: two commands on a fresh machine (Python 3.11 + make):
#   make demo   set up, then run the five-layer ETL on the sample data (embedded engine)
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test plan-dev plan-prod bench clean

# the ZetaSQL analyzer (tests) is compiled once into .cache/zetasql/ (a minute or two the first
# time; then it only checks the cached module loads)
setup: $(STAMP)
	$(PY) -m pipeline_sql.googlesql --prepare

$(STAMP): requirements.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c requirements.lock
	$(PY) -m pipeline_sql.engine --install-extensions
	touch $(STAMP)

demo: setup
	$(PY) -m pipeline_sql demo

test: setup
	$(PY) -m pytest -q

plan-dev: setup
	$(PY) -m stacks plan --stack dev

plan-prod: setup
	$(PY) -m stacks plan --stack prod

bench: setup
	$(PY) benchmarks/pipeline_bench.py
	$(PY) benchmarks/plan_bench.py

clean:
	rm -rf $(VENV) .flexyboots .pytest_cache .hypothesis .cache
