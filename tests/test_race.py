"""Racing (``nnbench run --race``) on real grids: what it prunes and stores, that survivors keep their numbers,
that a race resumes, merges and reports, that a run without it trains what it pruned, and bad input.

``tests/test_race_decisions.py`` tests the decisions alone; ``benchmarks/bench_race.py`` runs the large simulation
and the real grids (docs/racing.md has their figures)."""

from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from report_outline import outline

import nnbench
from nnbench.analysis import race_frames
from nnbench.analysis.racing import look_alpha
from nnbench.cli import cli
from nnbench.contract.errors import NNBenchError
from nnbench.contract.section import Paragraph, Table
from nnbench.execution.racing import Race
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
