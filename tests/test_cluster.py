"""The Ray executor on a cluster of two nodes started here (``ray_cluster``): the executor contract through the Ray
Client, time limits that count from where a trial starts, devices resolved on the cluster, causes of failures, a
lost head, and Ray missing. The cluster is shared by the module; the test that kills its head runs last."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from faulty_plugin import FaultyArchitectures
from local_cluster import cluster_env
from packaging.requirements import Requirement

import nnbench
from nnbench.cli import cli
from nnbench.execution import ray_cluster
from nnbench.testing.executors import check_executor

SMALL = ["--task", "moons", "--arch", "fnn", "--optimizer", "adam", "--seeds", "1"]


def stored(store: Path, where: str = "1") -> list[dict[str, Any]]:
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(f"SELECT * FROM trials WHERE {where} ORDER BY trial_id")]


def test_ray_conforms_on_two_nodes_through_the_ray_client(ray_cluster: Any, tmp_path: Path) -> None:
    check_executor("ray", tmp_path, {"extra": {"address": ray_cluster.client_address}})
    places = [json.loads(row["training"]) for row in stored(tmp_path / "there.db", "status = 'ok'")]
    assert all(place["node"] and place["ray_node"] for place in places)
    assert {place["device"] for place in places} == {"cpu"}


def test_a_time_limit_counts_from_where_each_trial_starts_not_while_it_waits(ray_cluster: Any,
                                                                            tmp_path: Path) -> None:
    # 3 slots, 18 items: the 9 slow ones start first and hold every slot until the limit stops them, 3 rounds of
    # 1.5 s, while the quick ones wait longer than a limit counted from when they were planned would allow (4.25 s)
    activations = "relu,tanh,gelu,elu,selu,silu,leaky_relu,softplus,mish"
    done = CliRunner().invoke(cli, ["run", *SMALL, "--activation", activations, "--epochs", "2,600",
                                    "--no-vectorize", "--timeout", "1.5", "--executor", "ray", "--address",
                                    ray_cluster.address, "--store", str(tmp_path / "limit.db"), "--no-report"])
    assert done.exit_code == 0, done.output
    statuses = {(row["activation"], row["epochs"]): row["status"] for row in stored(tmp_path / "limit.db")}
    assert len(statuses) == 18
    assert {status for (_, epochs), status in statuses.items() if epochs == 2} == {"ok"}
    assert {status for (_, epochs), status in statuses.items() if epochs == 600} == {"timeout"}
    assert len({json.loads(row["training"])["ray_node"] for row in stored(tmp_path / "limit.db")}) == 2


def test_devices_are_the_kinds_the_nodes_have_and_an_index_is_refused(ray_cluster: Any, tmp_path: Path) -> None:
    def dry_run(device: str) -> Any:
        return CliRunner().invoke(cli, ["run", *SMALL, "--activation", "relu", "--epochs", "1", "--device", device,
                                        "--executor", "ray", "--address", ray_cluster.address, "--dry-run",
                                        "--store", str(tmp_path / "none.db")])

    planned = dry_run("all")
    assert planned.exit_code == 0, planned.output
    assert "2 nodes, 3 CPUs, 1 GPU" in planned.output
    assert [line.split()[-3] for line in planned.output.splitlines() if "[to train]" in line] == ["cpu", "cuda"]
    pinned = dry_run("cuda:1")
    assert pinned.exit_code == 1
    assert pinned.output.strip().splitlines()[-1] == (
        "Error: device 'cuda:1' names one device of one machine, and the trials train on the ray executor's "
        "machines: ask for its kind, --device cuda (any of its devices takes the trials)")
    assert not (tmp_path / "none.db").exists()


def test_a_worker_that_dies_or_raises_fails_its_trial_with_the_cause_and_nothing_is_retried(
        ray_cluster: Any, nnbench_plugin: Any, tmp_path: Path) -> None:
    nnbench_plugin(FaultyArchitectures())
    frame = nnbench.run(task="moons", arch="exit,raise,fnn", activation="relu", optimizer="adam", seeds=1, epochs=2,
                        store=tmp_path / "faults.db", executor="ray", address=ray_cluster.address)
    status = dict(zip(frame["arch"], frame["status"], strict=True))
    errors = dict(zip(frame["arch"], frame["error"], strict=True))
    assert status == {"exit": "failed", "raise": "failed", "fnn": "ok"}, errors
    assert "ValueError: this architecture always raises" in errors["raise"]
    assert errors["exit"].startswith("its Ray worker (pid ") and "died while training it: The actor is dead" in \
        errors["exit"]
    places = {row["arch"]: json.loads(row["training"]) for row in stored(tmp_path / "faults.db")}
    assert all(place["node"] and place["ray_node"] and place["device"] == "cpu" for place in places.values()), places


def test_a_ray_the_user_started_again_is_used_and_not_the_one_before(monkeypatch: pytest.MonkeyPatch) -> None:
    class Context:
        def __init__(self, gcs: str) -> None:
            self.gcs_address = gcs

        def get_job_id(self) -> str:
            return "01000000"  # every fresh Ray numbers its first driver's job the same

    monkeypatch.setattr(ray_cluster, "_CONNECTED", None)
    monkeypatch.setattr(ray_cluster.ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray_cluster.ray, "get_runtime_context", lambda: Context("127.0.0.1:41000"))
    first = ray_cluster.connect({}, print)
    assert first.endpoint == ("127.0.0.1", 41000) and ray_cluster.connect({}, print) is first
    # ray.shutdown(), ray.init(): another Ray, whose head the run must probe
    monkeypatch.setattr(ray_cluster.ray, "get_runtime_context", lambda: Context("127.0.0.1:42000"))
    assert ray_cluster.connect({}, print).endpoint == ("127.0.0.1", 42000)


HIDDEN = """\
import sys
from importlib.abc import MetaPathFinder

class Hidden(MetaPathFinder):
    \"\"\"Packages as if they were not installed.\"\"\"

    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Hidden(sys.argv[1].split(",")))
from nnbench.cli import main
sys.argv = ["nnbench", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize(("hidden", "address", "line"), [
    ("ray", None, "Error: --executor ray needs Ray, which is not installed: pip install 'nnbench-arena[ray]'"),
    ("grpc", "ray://127.0.0.1:10001", "Error: --address ray://127.0.0.1:10001 needs the Ray Client, which is not "
                                      "installed: pip install 'nnbench-arena[ray]' (it installs ray[client])"),
], ids=["ray", "ray-client"])
def test_without_ray_or_its_client_the_ray_executor_is_one_line_and_nothing_is_stored(
        hidden: str, address: str | None, line: str, tmp_path: Path) -> None:
    store = tmp_path / "r.db"
    where = ["--address", address] if address else []
    done = subprocess.run([sys.executable, "-c", HIDDEN, hidden, "run", *SMALL, "--executor", "ray", *where,
                           "--store", str(store)], capture_output=True, text=True, env=cluster_env(), timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", line + "\n")
    assert not store.exists()


def test_the_ray_extra_installs_what_the_error_lines_promise() -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    ray_extra = [Requirement(line) for line in project["project"]["optional-dependencies"]["ray"]]
    assert [(r.name, r.extras) for r in ray_extra] == [("ray", {"client", "default"})]  # ray://, and `ray start`


def test_losing_the_head_ends_the_run_within_seconds_and_the_next_run_trains_only_the_rest(
        ray_cluster: Any, tmp_path: Path) -> None:
    import ray

    ray.shutdown()  # this process lets go of the cluster first: Ray ends a process whose head stays away
    store = tmp_path / "lost.db"
    command = [sys.executable, "-m", "nnbench", "run", *SMALL, "--activation", "relu,tanh,gelu,elu,selu,silu",
               "--optimizer", "sgd,adam", "--epochs", "60", "--no-vectorize", "--executor", "ray", "--store",
               str(store), "--no-report", "-q"]
    first = subprocess.Popen([*command, "--address", ray_cluster.address], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=cluster_env())
    deadline = time.monotonic() + 120
    while not (store.exists() and len(stored(store)) >= 2):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.2)
    ray_cluster.kill_head()
    killed = time.monotonic()
    _, err = first.communicate(timeout=60)
    assert time.monotonic() - killed < 10 and first.returncode == 1
    assert err.strip().splitlines()[-1].startswith(
        f"Error: lost the head of the Ray cluster at {ray_cluster.address} (Connection refused): the run stops here")
    before = {row["trial_id"] for row in stored(store)}
    with sqlite3.connect(store) as db:
        assert [row[0] for row in db.execute("SELECT status FROM runs")] == ["interrupted"]

    ray_cluster.restart()
    again = subprocess.run([*command, "--address", ray_cluster.address], capture_output=True, text=True,
                           env=cluster_env(), timeout=300)
    assert again.returncode == 0, again.stderr
    rows = stored(store)
    assert len(rows) == 12 and {row["status"] for row in rows} == {"ok"}
    with sqlite3.connect(store) as db:
        last = db.execute("SELECT run_id FROM runs ORDER BY rowid DESC").fetchone()[0]
        trained = {r[0] for r in db.execute("SELECT trial_id FROM run_trials WHERE run_id = ? AND reused = 0",
                                            (last,))}
    assert not trained & before and trained | before == {row["trial_id"] for row in rows}
