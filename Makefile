# flexyboots: two commands on a fresh machine (Python 3.11 + make):
#   make demo   set up, then run the five-layer ETL on the sample data (embedded engine)
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the CrossGuard policy pack's own virtualenv (pulumi-policy's protobuf pin clashes with the
# Google clients'); the Pulumi CLI uses the same folder (policy/PulumiPolicy.yaml: virtualenv: venv)
POLICY_VENV  := policy/venv
POLICY_STAMP := $(POLICY_VENV)/.installed

.PHONY: setup demo test plan-dev plan-prod bench clean

setup: $(STAMP) $(POLICY_STAMP)

$(STAMP): requirements.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c requirements.lock
	$(PY) -m pipeline_sql.engine --install-extensions
	touch $(STAMP)

$(POLICY_STAMP): policy/requirements.txt policy/requirements.lock
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt -c policy/requirements.lock
	touch $(POLICY_STAMP)

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
	rm -rf $(VENV) $(POLICY_VENV) .flexyboots .pytest_cache .hypothesis
