"""The DAG tests in tests/airflow_dags/ need Apache Airflow, which lives in its own virtualenv
(.venv-airflow; `make test` runs them there). Elsewhere they are not collected."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("airflow") else ["airflow_dags"]
