"""The SLURM recipe (examples/slurm.sbatch, shown in docs/cluster.md) runs as written, with stand-ins for ``sbatch``,
``srun`` and ``scontrol`` that make this machine an allocation of two nodes: a Ray head and a node that joins late,
the store on the driver's local disk, and the results back in the submit folder as a bundle, the only file the job
writes there. Submitted again with one more seed and long trials, the job merges that bundle first and plans only
what is missing; cut short by SLURM's TERM, it stops the run and still brings its bundle back whole."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner
from local_cluster import cluster_env, free_port

from nnbench.cli import cli

ROOT = Path(__file__).parents[1]
RECIPE = ROOT / "examples" / "slurm.sbatch"

SBATCH = """#!/bin/bash
# sbatch, as a stand-in: runs the batch script at once, here, in an allocation of $STUB_NODES nodes that are all
# this machine (their names resolve to it), one CPU each, the nodes' local disk $STUB_LOCAL_DISK
set -euo pipefail
script=$1
shift
id=$(( $(cat "$STUB_STATE/jobs" 2> /dev/null || echo 0) + 1 ))
echo "$id" > "$STUB_STATE/jobs"
echo "Submitted batch job $id"
names=(127.0.0.1 localhost 127.0.0.2 127.0.0.3)
export SLURM_JOB_ID=$id SLURM_JOB_NUM_NODES=$STUB_NODES SLURM_CPUS_PER_TASK=1 SLURM_SUBMIT_DIR=$PWD
export SLURM_JOB_NODELIST=$(IFS=,; echo "${names[*]:0:$STUB_NODES}")
export TMPDIR=$STUB_LOCAL_DISK
exec bash "$script" "$@"
"""

SCONTROL = """#!/bin/bash
# scontrol, as a stand-in: `scontrol show hostnames LIST` of a comma-separated list
[ "$1 $2" = "show hostnames" ] && tr , '\\n' <<< "$3"
"""

SRUN = """#!/bin/bash
# srun, as a stand-in: runs the step's command --ntasks times here, as if on other nodes of the allocation, each
# task's output in a file of $STUB_STATE. Nodes that share this machine need ports of their own: each `ray start`
# gets free ones for what it would open on a port of Ray's choosing, and no dashboard; a node joining a head does so
# $STUB_JOIN_DELAY seconds late. Each task is a session of its own, its id kept in $STUB_STATE/steps, so that the
# test can end whatever the job left by those ids. Told to stop (TERM), it stops its tasks as srun does: TERM, then
# KILL what is left a few seconds later.
tasks=1
while [[ $# -gt 0 && $1 == -* ]]; do
  [[ $1 == --ntasks=* ]] && tasks=${1#--ntasks=}
  shift
done
port() { "$STUB_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
task() {
  local command=("$@")
  if [[ ${command[0]} == ray && ${command[1]} == start ]]; then
    command+=(--dashboard-agent-listen-port="$(port)" --node-ip-address=127.0.0.1 --disable-usage-stats)
    [[ " ${command[*]} " == *" --head "* ]] && command+=(--ray-client-server-port="$(port)" --include-dashboard=false)
    [[ " ${command[*]} " == *" --address="* ]] && sleep "${STUB_JOIN_DELAY:-0}"
  fi
  exec setsid "${command[@]}"
}
pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2> /dev/null; done
  for _ in 1 2 3 4; do
    kill -0 "${pids[@]}" 2> /dev/null || exit 143
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2> /dev/null; done
  exit 143
}
trap stop TERM
for (( i = 0; i < tasks; i++ )); do
  task "$@" > "$STUB_STATE/task-$$-$i.log" 2>&1 &
  pids+=($!)
  echo $! >> "$STUB_STATE/steps"
done
wait
"""


def stand_ins(folder: Path) -> Path:
    """The stand-in commands, in a folder to put first on PATH."""
    folder.mkdir()
    for name, body in (("sbatch", SBATCH), ("scontrol", SCONTROL), ("srun", SRUN)):
        (folder / name).write_text(body)
        (folder / name).chmod(0o755)
    return folder


def runs(store: Path) -> list[tuple[str, str]]:
    """The runs of ``store`` (none while it does not exist), in the order they started."""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            return db.execute("SELECT run_id, status FROM runs ORDER BY started_at").fetchall()
    except sqlite3.OperationalError:  # not there yet, or its tables not yet made
        return []


def trials(store: Path) -> list[dict[str, object]]:
    with sqlite3.connect(store) as db:
        return [{"status": status, **json.loads(training)}
                for status, training in db.execute("SELECT status, training FROM trials")]


def test_the_recipe_trains_on_the_allocation_and_brings_its_results_back_whole(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    local = Path(tempfile.mkdtemp(prefix="nodes-"))  # short: Ray's sockets go in there, their paths are limited
    submit = tmp_path / "submit"  # the shared disk
    submit.mkdir()
    (submit / "grid.toml").write_text('[grid]\ntask = "moons"\narch = "fnn"\nactivation = ["relu", "tanh"]\n'
                                      'optimizer = "adam"\nseeds = 2\nepochs = 2\n')
    env = {**cluster_env(), "PATH": f"{stand_ins(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
           "STUB_STATE": str(state), "STUB_NODES": "2", "STUB_JOIN_DELAY": "2", "STUB_PYTHON": sys.executable,
           "STUB_LOCAL_DISK": str(local),
           "RAY_PORT": str(free_port())}

    def sbatch(*options: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["sbatch", str(RECIPE), "grid.toml", "--no-report", *options], cwd=submit, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    try:
        first = sbatch()
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, out + err
        assert out.startswith("Submitted batch job 1\n") and "4 trials: 4 to train" in out
        assert sorted(p.name for p in submit.iterdir()) == ["grid.toml", "nnbench-1.zip"]  # no SQLite there
        # the node that joins late was waited for (--nodes): planned with both
        assert f"trials train on the Ray cluster at 127.0.0.1:{env['RAY_PORT']}: 2 nodes, 2 CPUs" in err

        # submitted again with a seed more and long trials, and cut short (SLURM's TERM before the time limit)
        second = sbatch("--seeds", "3", "--epochs", "2,5000")
        store = local / "nnbench-2.db"
        deadline = time.monotonic() + 120
        while len(runs(store)) < 2:  # the earlier job's run, merged from its bundle, and this job's, started
            assert second.poll() is None and time.monotonic() < deadline, second.communicate()
            time.sleep(0.2)
        second.send_signal(signal.SIGTERM)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 130, out + err
        assert "12 trials: 8 to train, 4 already stored" in out
        assert sorted(p.name for p in submit.iterdir()) == ["grid.toml", "nnbench-1.zip", "nnbench-2.zip"]

        merged = CliRunner().invoke(cli, ["merge", *(str(p) for p in sorted(submit.glob("nnbench-*.zip"))),
                                          "--store", str(tmp_path / "login.db")])
        assert merged.exit_code == 0, merged.output
        found = trials(tmp_path / "login.db")
        assert len(found) == 4 and {t["status"] for t in found} == {"ok"}
        assert all(t["node"] and t["ray_node"] and t["device"] == "cpu" for t in found)
        assert [status for _, status in runs(tmp_path / "login.db")] == ["finished", "interrupted"]
    finally:
        for pid in (state / "steps").read_text().split() if (state / "steps").exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)
        shutil.rmtree(local, ignore_errors=True)
