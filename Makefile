# flexyboots: two commands on a fresh machine (Python 3.11 + make):
#   make demo   set up, then run the five-layer ETL on the sample data (embedded engine)
#   make test   set up, then run the whole test suite (its DAG tests with real Airflow)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Apache Airflow + the Google provider, the real consumer of the DAG files: their own venv
# (their pins clash with the Pulumi SDK's), installed from a full lock, re-made only when the
# lock changes (the stamp).
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_PY    := $(AIRFLOW_VENV)/bin/python
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
# Amundsen's databuilder, the real consumer of the catalog job (numpy<2, pandas<=2.2.2): its
# own venv from its own lock, the same way.
DATABUILDER_VENV  := .venv-databuilder
DATABUILDER_PY    := $(DATABUILDER_VENV)/bin/python
DATABUILDER_STAMP := $(DATABUILDER_VENV)/.installed
# the CrossGuard policy pack's own virtualenv (pulumi-policy's protobuf pin clashes with the
# Google clients'); the Pulumi CLI uses the same folder (policy/PulumiPolicy.yaml: virtualenv: venv)
POLICY_VENV  := policy/venv
POLICY_STAMP := $(POLICY_VENV)/.installed

.PHONY: setup airflow-setup airflow-lock databuilder-setup databuilder-lock demo test plan-dev plan-prod bench dag-bench clean

setup: $(STAMP) $(POLICY_STAMP)

airflow-setup: $(AIRFLOW_STAMP)

$(AIRFLOW_STAMP): requirements-airflow.txt requirements-airflow.lock
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_PY) -m pip install --quiet --disable-pip-version-check -r requirements-airflow.txt -c requirements-airflow.lock
	touch $(AIRFLOW_STAMP)

# After changing requirements-airflow.txt: resolve once in a scratch venv and write the lock.
airflow-lock:
	rm -rf .venv-airflow-lock
	$(PYTHON) -m venv .venv-airflow-lock
	.venv-airflow-lock/bin/pip install --quiet --disable-pip-version-check -r requirements-airflow.txt
	{ sed -n '1,2p' requirements-airflow.lock; .venv-airflow-lock/bin/pip freeze --all | grep -v -E '^(pip|setuptools|wheel)=='; } > requirements-airflow.lock.new
	mv requirements-airflow.lock.new requirements-airflow.lock
	rm -rf .venv-airflow-lock

databuilder-setup: $(DATABUILDER_STAMP)

$(DATABUILDER_STAMP): requirements-databuilder.txt requirements-databuilder.lock
	rm -rf $(DATABUILDER_VENV)
	$(PYTHON) -m venv $(DATABUILDER_VENV)
	$(DATABUILDER_PY) -m pip install --quiet --disable-pip-version-check -r requirements-databuilder.txt -c requirements-databuilder.lock
	touch $(DATABUILDER_STAMP)

# After changing requirements-databuilder.txt: resolve once in a scratch venv and write the lock.
databuilder-lock:
	rm -rf .venv-databuilder-lock
	$(PYTHON) -m venv .venv-databuilder-lock
	.venv-databuilder-lock/bin/pip install --quiet --disable-pip-version-check -r requirements-databuilder.txt
	{ echo '# Every package of .venv-databuilder, pinned (pip freeze). Regenerate with `make databuilder-lock`.'; .venv-databuilder-lock/bin/pip freeze --all | grep -v -E '^(pip|setuptools|wheel)=='; } > requirements-databuilder.lock.new
	mv requirements-databuilder.lock.new requirements-databuilder.lock
	rm -rf .venv-databuilder-lock

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

test: setup airflow-setup databuilder-setup
	$(PY) -m pytest -q
	$(AIRFLOW_PY) -m pytest -q tests/airflow_dags

plan-dev: setup
	$(PY) -m stacks plan --stack dev

plan-prod: setup
	$(PY) -m stacks plan --stack prod

bench: setup airflow-setup
	$(PY) benchmarks/pipeline_bench.py
	$(PY) benchmarks/plan_bench.py
	$(PY) benchmarks/dag_bench.py --tables 2000

dag-bench: setup airflow-setup
	$(PY) benchmarks/dag_bench.py --tables 200
	$(PY) benchmarks/dag_bench.py --tables 2000

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(DATABUILDER_VENV) $(POLICY_VENV) .flexyboots .pytest_cache .hypothesis
