"""Racing (``nnbench run --race``): what it prunes and stores, that survivors keep their numbers, that a race
resumes and a run without it trains what it pruned, bad input, and the decisions' error rate on a small simulation.

``benchmarks/bench_race.py`` runs the large simulation and the real grids (docs/racing.md has their figures)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sqlite3
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from report_outline import outline

import nnbench
from nnbench.analysis import paired, race_frames
from nnbench.analysis.racing import ALPHA, decide, look_alpha, seed_rungs
from nnbench.cli import cli
from nnbench.contract.errors import NNBenchError
from nnbench.contract.section import Paragraph, Table
from nnbench.contract.trial import Trial
from nnbench.execution.racing import Race, check_race
from nnbench.loading.plugins import make_plugin_manager
from nnbench.reporting import build_report
from nnbench.reporting.race_section import race as race_section
from nnbench.storage.merging import merge
from nnbench.storage.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
# Two configurations that learn the circles (relu) and two linear models that cannot (identity): the race must drop
# the latter after the first rung and keep the former.
GRID: dict[str, Any] = {"task": "circles", "arch": "fnn", "activation": ["relu", "identity"], "optimizer": "adam",
                        "lr": [0.01, 0.03], "seeds": 5, "epochs": 3, "workers": 1}


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_race", ROOT / "benchmarks" / "bench_race.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def rows(db: Path) -> pd.DataFrame:
    with sqlite3.connect(db) as conn:
        return pd.read_sql("SELECT * FROM trials ORDER BY lr, activation, seed", conn).set_index("trial_id")


@pytest.fixture(autouse=True)
def no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNBENCH_PLUGINS", "none")


@pytest.fixture(scope="module")
def raced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The grid raced and trained exhaustively (one by one, so that every number can be compared bit for bit)."""
    folder = tmp_path_factory.mktemp("race")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NNBENCH_PLUGINS", "none")
        nnbench.run(**GRID, vectorize=False, race=True, store=folder / "race.db")
        nnbench.run(**GRID, vectorize=False, store=folder / "full.db")
    return folder / "race.db", folder / "full.db"


def test_a_race_prunes_the_configurations_shown_worse_and_stores_its_evidence(raced: tuple[Path, Path]) -> None:
    race_db, _ = raced
    trials = rows(race_db)
    pruned = trials[trials["status"] == "pruned"]
    assert set(pruned["activation"]) == {"identity"} and len(pruned) == 2 * 3  # both linear models, seeds 2, 3, 4
    assert set(trials.loc[trials["activation"] == "relu", "status"]) == {"ok"}
    assert (pruned["epochs_run"] == 0).all() and pruned["metric"].isna().all()
    for text in pruned["race"]:
        evidence = json.loads(text)
        assert evidence["seeds"] == 2 and evidence["rung"] == 1 and evidence["epoch"] == 3
        assert evidence["against"].startswith("fnn/relu/") and evidence["metric"] == "val_accuracy"
        assert evidence["mean_difference"] > evidence["rope"] == 0.005
        assert evidence["p_value"] < evidence["alpha"] == pytest.approx(look_alpha(5))
    assert trials.loc[trials["status"] != "pruned", "race"].isna().all()
    with ResultStore(race_db, readonly=True) as store:
        assert json.loads(store.runs()["race"].iloc[0])["rungs"] == [2, 4, 5]
        assert store.finished_trial_ids(pruned.index) == set()  # neither failed nor finished: a run trains them


def test_survivors_store_exactly_the_numbers_of_a_run_without_a_race(raced: tuple[Path, Path]) -> None:
    race_db, full_db = raced
    race, full = rows(race_db), rows(full_db)
    kept = race[race["status"] == "ok"].index
    assert len(kept) == 2 * 5 + 2 * 2  # the survivors' five seeds, the pruned configurations' first two
    columns = ["metric", "val_metric", "train_loss", "test_loss", "val_loss", "accuracy", "best_epoch", "epochs_run"]
    pd.testing.assert_frame_equal(race.loc[kept, columns], full.loc[kept, columns], check_exact=True,
                                  check_dtype=False)
    with sqlite3.connect(race_db) as a, sqlite3.connect(full_db) as b:
        query = "SELECT trial_id, epoch, val_metric, metric, train_loss FROM epochs ORDER BY trial_id, epoch"
        raced_curves = [r for r in a.execute(query).fetchall() if r[0] in set(kept)]
        full_curves = [r for r in b.execute(query).fetchall() if r[0] in set(kept)]
    assert raced_curves == full_curves


def test_a_race_on_worker_processes_decides_and_stores_the_same(raced: tuple[Path, Path], tmp_path: Path) -> None:
    race_db, _ = raced
    nnbench.run(**{**GRID, "workers": 2}, vectorize=False, race=True, store=tmp_path / "workers.db")
    here, there = rows(race_db), rows(tmp_path / "workers.db")
    pd.testing.assert_frame_equal(here[["status", "metric", "val_metric", "race"]],
                                  there.loc[here.index, ["status", "metric", "val_metric", "race"]], check_exact=True)


def test_a_run_without_a_race_trains_what_the_race_pruned_and_reuses_the_rest(raced: tuple[Path, Path],
                                                                               tmp_path: Path) -> None:
    race_db, full_db = raced
    copy = tmp_path / "race.db"
    copy.write_bytes(race_db.read_bytes())
    frame = nnbench.run(**GRID, vectorize=False, store=copy)
    trials = rows(copy)
    assert (trials["status"] == "ok").all() and len(frame) == 20
    full = rows(full_db)
    pd.testing.assert_series_equal(trials["metric"], full.loc[trials.index, "metric"], check_exact=True)
    with ResultStore(copy, readonly=True) as store:
        trained = store.trials([store.latest_run_id()])
    assert len(trained) == 20  # the run covers every trial: the six it trained and the fourteen it reused


def test_a_merged_store_keeps_the_race_of_each_run(raced: tuple[Path, Path], tmp_path: Path) -> None:
    race_db, _ = raced
    merge(tmp_path / "merged.db", [race_db])
    with ResultStore(race_db, readonly=True) as source, ResultStore(tmp_path / "merged.db", readonly=True) as merged:
        assert merged.runs()["race"].tolist() == source.runs()["race"].tolist()
        assert json.loads(merged.runs()["race"].iloc[0])["planned_epochs"] == 20 * 3
        pd.testing.assert_frame_equal(merged.trials().set_index("trial_id")[["status", "race"]].sort_index(),
                                      source.trials().set_index("trial_id")[["status", "race"]].sort_index())


def test_a_race_interrupted_after_its_first_rung_resumes_and_decides_the_same(
        raced: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    race_db, _ = raced
    db = tmp_path / "race.db"

    def interrupt(self: Race, rung: int, epochs: int) -> str:
        raise KeyboardInterrupt  # Ctrl-C once the first rung's decisions are stored

    with monkeypatch.context() as patch:
        patch.setattr(Race, "state", interrupt)
        with pytest.raises(KeyboardInterrupt):
            nnbench.run(**GRID, vectorize=False, race=True, store=db)
    first = rows(db)
    assert set(first["status"]) == {"ok", "pruned"} and len(first[first["status"] == "ok"]) == 4 * 2
    nnbench.run(**GRID, vectorize=False, race=True, store=db)
    again, whole = rows(db), rows(race_db)
    pd.testing.assert_series_equal(again["status"], whole.loc[again.index, "status"])
    assert len(again) == len(whole)
    evidence = again["race"].dropna().map(lambda text: json.loads(text)["p_value"])
    assert evidence.equals(whole.loc[evidence.index, "race"].map(lambda text: json.loads(text)["p_value"]))
    with ResultStore(db, readonly=True) as store:
        runs = store.runs()
        assert list(runs["status"]) == ["interrupted", "finished"]
        assert len(store.trials([runs["run_id"].iloc[-1]])) == 20  # the second run covers the whole race


def test_the_report_and_the_summary_list_the_pruned_configurations_and_compare_only_the_finished(
        raced: tuple[Path, Path]) -> None:
    race_db, _ = raced
    with ResultStore(race_db, readonly=True) as store:
        trials = store.trials()
    section = race_section(trials)
    texts = [b.text for b in section.blocks if isinstance(b, Paragraph)]
    assert "A race trained 42 of the 60 epochs the exhaustive grid plans (70%)" in texts[0]
    assert sum(t.startswith("fnn/identity/") and "worse than fnn/relu/" in t and "at epoch 3, seeds 2" in t
               for t in texts) == 2
    assert any(isinstance(b, Table) for b in section.blocks)
    finished = race_frames.finished_configurations(trials)
    assert set(finished["activation"]) == {"relu"} and len(finished) == 10
    assert race_frames.compute_spent(trials)["share"] == pytest.approx(42 / 60)


def test_the_report_has_a_race_section_through_its_hook_and_leaderboards_of_the_finished(
        raced: tuple[Path, Path]) -> None:
    race_db, full_db = raced
    with ResultStore(race_db, readonly=True) as store:
        page = outline(build_report(store, store.run_ids(), make_plugin_manager(load_entry_points=False)).html)
    assert page.sections["race"]["h2"] == "Race" and page.sections["race"]["tables"] == 1
    assert "identity" not in page.sections["leaderboard"]["text"]  # only the configurations that finished
    with ResultStore(full_db, readonly=True) as store:  # a run without a race: no race section, not even a note
        page = outline(build_report(store, store.run_ids(), make_plugin_manager(load_entry_points=False)).html)
    assert "race" not in page.sections and "Race" not in page.left_out
    assert "identity" in page.sections["leaderboard"]["text"]


def stored_race() -> pd.DataFrame:
    """A raced grid as the store returns it: relu finished its 3 seeds; identity@0.01 was pruned after 2 seeds at
    the first rung and tanh after 2 at the first rung of another task; a trial's status and evidence as stored."""
    rows = []
    kept, cut = ["ok"] * 3, ["ok", "ok", "pruned"]
    for task, activation, statuses, rung in (("moons", "relu", kept, None), ("moons", "identity", cut, 1),
                                             ("sine", "relu", kept, None), ("sine", "tanh", cut, 1)):
        for seed, status in enumerate(statuses):
            evidence = None if status != "pruned" else json.dumps({
                "configuration": f"fnn/{activation}", "rung": rung, "epoch": 4, "seeds": 2, "against": "fnn/relu",
                "metric": "val_accuracy", "mean_difference": 0.3, "rope": 0.005, "p_value": 0.001, "alpha": 0.025})
            rows.append({"trial_id": f"{task}-{activation}-{seed}", "run_id": "r", "task": task, "arch": "fnn",
                         "activation": activation, "lr": 0.01, "seed": seed, "epochs": 4, "status": status,
                         "epochs_run": 0 if status == "pruned" else 4, "train_time": 0 if status == "pruned" else 1.5,
                         "metric": None if status == "pruned" else 0.9, "race": evidence})
    return pd.DataFrame(rows)


def test_a_stored_race_reads_as_its_pruned_and_its_finished_configurations() -> None:
    trials = stored_race()
    assert race_frames.raced(trials) and not race_frames.raced(trials[trials["status"] == "ok"])
    ids = race_frames.configuration_ids(trials)
    assert ids.nunique() == 4 and ids.iloc[0] == ids.iloc[1] != ids.iloc[3]  # seeds share an id, activations do not
    finished = race_frames.finished_configurations(trials)
    assert list(finished["trial_id"]) == [f"{t}-relu-{s}" for t in ("moons", "sine") for s in range(3)]
    pruned = race_frames.pruned_configurations(trials)
    assert list(pruned["task"]) == ["moons", "sine"] and list(pruned["activation"]) == ["identity", "tanh"]
    assert list(pruned["not_trained"]) == [1, 1] and list(pruned["rung"]) == [1, 1] and list(pruned["seeds"]) == [2, 2]
    assert pruned["text"].iloc[0] == ("fnn/identity: worse than fnn/relu at epoch 4, seeds 2 (+0.3 val_accuracy "
                                      "beyond ±0.005, Holm-adjusted p = 0.001 < 0.025)")
    assert race_frames.compute_spent(trials) == {"planned_epochs": 48.0, "trained_epochs": 40.0,
                                                 "share": pytest.approx(40 / 48), "train_time": 15.0}
    empty = race_frames.pruned_configurations(trials[trials["status"] == "ok"])
    assert empty.empty and "text" in empty.columns
    unraced = trials[trials["status"] == "ok"]
    assert race_frames.finished_configurations(unraced).equals(unraced)


def test_a_pruning_line_never_shows_its_p_value_rounded_up_to_alpha() -> None:
    row = {"configuration": "fnn/identity/adam@0.01", "against": "fnn/relu/adam@0.01", "epoch": 3, "seeds": 2,
           "mean_difference": 0.4, "metric": "val_accuracy", "rope": 0.005, "alpha": 0.025}
    assert "p = 0.02496 < 0.025)" in race_frames.describe({**row, "p_value": 0.024961})
    assert "p = 0.0035 < 0.025)" in race_frames.describe({**row, "p_value": 0.003512})


def test_a_race_without_pruned_configurations_has_only_a_note() -> None:
    section = race_section(pd.DataFrame({"status": ["ok"], "epochs": [2], "epochs_run": [2]}))
    assert [type(b).__name__ for b in section.blocks] == ["Note"]


@pytest.mark.parametrize(("arguments", "says"), [
    (["--seeds", "1"], "--race needs --seeds 3 or more, not 1"),
    (["--seeds", "2"], "--race needs --seeds 3 or more, not 2"),
    (["--activation", "relu", "--lr", "0.01"], "no task of this grid has two"),
])
def test_a_race_that_cannot_run_says_why_in_one_line_before_anything_is_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], says: str) -> None:
    monkeypatch.chdir(tmp_path)
    grid = ["--task", "moons", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer", "adam", "--seeds", "5",
            "--epochs", "1"]
    result = CliRunner().invoke(cli, ["run", *grid, *arguments, "--race", "--store", "r.db", "--no-report"])
    assert result.exit_code == 1 and says in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "r.db").exists()


def test_the_python_call_races_with_the_rope_it_is_given(tmp_path: Path) -> None:
    # Half a point of accuracy wider than any gap: nothing can be worse beyond it, so the linear models survive
    wide = nnbench.run(**GRID, vectorize=False, race=True, rope=0.5, store=tmp_path / "wide.db", quiet=True)
    assert set(wide["status"]) == {"ok"} and len(wide) == 20
    with pytest.raises(NNBenchError, match="rope"):
        nnbench.run(**GRID, race=True, rope="wide", store=tmp_path / "bad.db", quiet=True)
    assert not (tmp_path / "bad.db").exists()
    assert "rope" in inspect.signature(nnbench.run).parameters


def test_a_race_needs_validation_data() -> None:
    trials = [Trial(task="moons", arch="fnn", activation=a, loss="cross_entropy", optimizer="adam", lr=0.01,
                    batch_size=32, epochs=1, seed=s) for a in ("relu", "tanh") for s in range(3)]
    with pytest.raises(NNBenchError, match="--validation none holds none back"):
        check_race(trials, 3, ["none"])
    check_race(trials, 3, ["split"])  # the same grid with a validation split races


def test_the_rungs_start_with_two_seeds_and_double() -> None:
    assert seed_rungs(3) == [2, 3] and seed_rungs(5) == [2, 4, 5] and seed_rungs(10) == [2, 4, 8, 10]
    assert look_alpha(5) == ALPHA / 2 and ALPHA == paired.ALPHA
    with pytest.raises(ValueError, match="3 seeds or more"):
        seed_rungs(2)


def test_ties_within_the_rope_are_never_pruned_and_a_clear_loser_is_at_two_seeds() -> None:
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.02, 2)
    scores = {f"tie{i}": 0.9 + seed_effect + rng.normal(0, 0.001, 2) for i in range(10)}
    scores["worse"] = 0.7 + seed_effect + rng.normal(0, 0.001, 2)
    scores["within"] = 0.897 + seed_effect  # 0.003 below the others: inside a ROPE of 0.005
    pruned = decide(scores, True, 0.005, ALPHA, step=0.0)
    assert [p.configuration for p in pruned] == ["worse"]
    assert pruned[0].seeds == 2 and pruned[0].mean_difference == pytest.approx(0.2, abs=0.01)
    # the same in a metric where lower is better
    flipped = decide({k: -np.asarray(v) for k, v in scores.items()}, False, 0.005, ALPHA, step=0.0)
    assert [p.configuration for p in flipped] == ["worse"]
    # a missing seed (a diverged trial) is left out of its pairs, never read as a bad score
    scores["worse"] = np.array([0.7, np.nan])
    assert decide(scores, True, 0.005, ALPHA, step=0.0) == []


def test_seeds_that_agree_exactly_decide_by_the_rope_alone() -> None:
    # No spread at all (every seed the same, a metric without steps): a gap beyond the ROPE is certain, one within
    # it is never pruned
    exact = {"best": [0.9, 0.9, 0.9], "worse": [0.5, 0.5, 0.5], "within": [0.898, 0.898, 0.898]}
    pruned = decide(exact, True, 0.005, ALPHA, step=0.0)
    assert [(p.configuration, p.p_value) for p in pruned] == [("worse", 0.0)]


def test_the_simulation_prunes_and_keeps_its_error_rate() -> None:
    bench = load_benchmark()
    table = {row["scenario"]: row for row in bench.simulate(120, seed=1, scenarios=("null", "spread", "ties"))}
    # Every configuration within the ROPE of the best: any pruning is wrong; the rate stays near alpha (the
    # upper end of a binomial's 99% range at 5% over 120 grids is 12 grids).
    assert table["null"]["wrongly_pruned"] <= 12 / 120
    assert table["ties"]["wrongly_pruned"] <= 12 / 120
    # A grid with real differences: most configurations leave early and the race trains far less.
    assert table["spread"]["configurations_pruned"] > 0.5 and table["spread"]["epochs_trained"] < 0.75
    assert table["spread"]["best_within_rope"] > 0.9
