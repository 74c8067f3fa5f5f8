#!/usr/bin/env bash
# Check pipelines/airflow_segment_dag.py on real Airflow 3, outside CI (its install takes minutes):
# a throwaway venv with apache-airflow (constrained when the constraints file can be fetched) and
# this package, then the DAG's dag.test() against the simulator with two workspaces into DuckDB.
# Prints the install and run times; exits non-zero if anything fails.
#   bash benchmarks/airflow_check.sh                          # a throwaway dir, removed at the end
#   AIRFLOW_CHECK_DIR=/tmp/af bash benchmarks/airflow_check.sh  # kept: a second run skips the install
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
AIRFLOW_VERSION=${AIRFLOW_VERSION:-3.3.2}
if [ -n "${AIRFLOW_CHECK_DIR:-}" ]; then
  WORK=$AIRFLOW_CHECK_DIR
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
PY=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

if [ ! -x "$WORK/venv/bin/airflow" ]; then
  python3 -m venv "$WORK/venv"
  started=$(date +%s)
  CONSTRAINTS="https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PY}.txt"
  if python3 -c "import sys, urllib.request; open(sys.argv[2], 'wb').write(urllib.request.urlopen(sys.argv[1], timeout=20).read())" "$CONSTRAINTS" "$WORK/constraints.txt" 2>/dev/null; then
    echo "== installing apache-airflow==$AIRFLOW_VERSION with Airflow's constraints for Python $PY"
    "$WORK/venv/bin/pip" install -q "apache-airflow==$AIRFLOW_VERSION" --constraint "$WORK/constraints.txt"
  else
    echo "== Airflow's constraints file is out of reach: installing apache-airflow==$AIRFLOW_VERSION unconstrained"
    "$WORK/venv/bin/pip" install -q "apache-airflow==$AIRFLOW_VERSION"
  fi
  "$WORK/venv/bin/pip" install -q -e "$REPO"
  echo "installed in $(( $(date +%s) - started )) s"
fi

export AIRFLOW_HOME="$WORK/airflow" AIRFLOW__CORE__LOAD_EXAMPLES=false RUNTIME__DLTHUB_TELEMETRY=false
export DLT_DATA_DIR="$WORK/dlt" DESTINATION__DUCKDB__CREDENTIALS="$WORK/segment.duckdb"
rm -rf "$DLT_DATA_DIR" "$DESTINATION__DUCKDB__CREDENTIALS"
# Airflow 3 runs only DAGs it has parsed from a bundle: the file goes into the dags folder
mkdir -p "$AIRFLOW_HOME/dags"
cp "$REPO/pipelines/airflow_segment_dag.py" "$AIRFLOW_HOME/dags/"
"$WORK/venv/bin/airflow" db migrate >/dev/null
started=$(date +%s)
"$WORK/venv/bin/python" - <<'EOF'
import os
import subprocess
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
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    subprocess.run([airflow, "dags", "reserialize"], check=True, capture_output=True)
    # `airflow dags test` is dag.test() on the parsed DAG; it exits non-zero when a task failed
    subprocess.run([airflow, "dags", "test", "segment_source"], check=True)
with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"], read_only=True) as db:
    found = dict(db.sql("SELECT workspace_id, count(*) FROM segment_data.sources GROUP BY 1").fetchall())
assert found == {a.id: len(a.ids("sources")), b.id: len(b.ids("sources"))}, found
print("sources per workspace:", found)
EOF
echo "dag.test() passed in $(( $(date +%s) - started )) s"
