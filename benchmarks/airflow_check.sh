#!/usr/bin/env bash
# Check pipelines/airflow_segment_dag.py on real Airflow 3, outside CI (its install takes minutes):
# a throwaway venv with apache-airflow (constrained when the constraints file can be fetched) and
# this package, then the DAG's dag.test() against the simulator with two workspaces into DuckDB.
# Prints the install and run times; exits non-zero if anything fails.
#   bash benchmarks/airflow_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
AIRFLOW_VERSION=${AIRFLOW_VERSION:-3.3.2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PY=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

python3 -m venv "$WORK/venv"
started=$(date +%s)
CONSTRAINTS="https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PY}.txt"
if python3 -c "import urllib.request; urllib.request.urlretrieve('$CONSTRAINTS', '$WORK/constraints.txt')" 2>/dev/null; then
  echo "== installing apache-airflow==$AIRFLOW_VERSION with Airflow's constraints for Python $PY"
  "$WORK/venv/bin/pip" install -q "apache-airflow==$AIRFLOW_VERSION" --constraint "$WORK/constraints.txt"
else
  echo "== Airflow's constraints file is out of reach: installing apache-airflow==$AIRFLOW_VERSION unconstrained"
  "$WORK/venv/bin/pip" install -q "apache-airflow==$AIRFLOW_VERSION"
fi
"$WORK/venv/bin/pip" install -q -e "$REPO"
echo "installed in $(( $(date +%s) - started )) s"

export AIRFLOW_HOME="$WORK/airflow" AIRFLOW__CORE__LOAD_EXAMPLES=false RUNTIME__DLTHUB_TELEMETRY=false
export DLT_DATA_DIR="$WORK/dlt" DESTINATION__DUCKDB__CREDENTIALS="$WORK/segment.duckdb"
"$WORK/venv/bin/airflow" db migrate >/dev/null
started=$(date +%s)
"$WORK/venv/bin/python" - "$REPO/pipelines/airflow_segment_dag.py" <<'EOF'
import importlib.util
import os
import sys

import duckdb

from segment_simulator import SegmentSimulator, generate_workspace

a, b = generate_workspace("small", slug="alpha"), generate_workspace("small", slug="beta")
with SegmentSimulator({"tok-a": a, "tok-b": b}) as sim:
    os.environ.update(
        SOURCES__SEGMENT_SOURCE__API_KEY="tok-a,tok-b",
        SOURCES__SEGMENT_SOURCE__BASE_URL=sim.url,
        SOURCES__SEGMENT_SOURCE__SCHEDULE__WORKSPACES='["alpha", "beta"]',
    )
    spec = importlib.util.spec_from_file_location("airflow_segment_dag", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.dag_object.test()
    print("dag run:", run.state)
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"], read_only=True) as db:
    found = dict(db.sql("SELECT workspace_id, count(*) FROM segment_data.sources GROUP BY 1").fetchall())
assert found == {a.id: len(a.ids("sources")), b.id: len(b.ids("sources"))}, found
print("sources per workspace:", found)
EOF
echo "dag.test() passed in $(( $(date +%s) - started )) s"
