"""Bundles and ``nnbench merge``: a grid split over two machines merges into what one machine would have stored;
the same trial with other numbers is kept from both sides and flagged; trials of other code stay apart; an
interrupted merge leaves the target as it was; bad input is one line before the target changes."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_store_faults import make_unwritable

import nnbench
from nnbench.cli import cli
from nnbench.reporting import build_report
from nnbench.storage import merging
from nnbench.storage.bundle import DATA, MANIFEST
from nnbench.storage.merging import CURVE_NUMBERS, NUMBERS, merge
from nnbench.storage.migrations import MIGRATIONS
from nnbench.storage.store import ResultStore

GRID = {"arch": "fnn", "activation": "relu,gelu", "optimizer": "adam", "seeds": 2, "epochs": 2, "workers": 1,
        "quiet": True}
ROOT = Path(__file__).parents[1]


def numbers(path: Path) -> dict[str, tuple[Any, ...]]:
    """Each trial of the store ``path`` with what makes its result: its numbers and its curve (never timings)."""
    with sqlite3.connect(path) as db:
        trials = {row[0]: row[1:] for row in db.execute(f"SELECT trial_id, {', '.join(NUMBERS)} FROM trials")}
        curves: dict[str, list[tuple[Any, ...]]] = {}
        for row in db.execute(f"SELECT trial_id, epoch, {', '.join(CURVE_NUMBERS)} FROM epochs ORDER BY epoch"):
            curves.setdefault(row[0], []).append(row[1:])
    return {trial_id: (values, tuple(curves.get(trial_id, []))) for trial_id, values in trials.items()}


def merge_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["merge", *args])


@pytest.fixture(scope="module")
def split_grid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same grid run in one store, and split by task over two stores (two machines)."""
    folder = tmp_path_factory.mktemp("split")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NNBENCH_PLUGINS", "none")
        nnbench.run(task="iris,wine", store=folder / "one.db", **GRID)
        nnbench.run(task="iris", store=folder / "laptop.db", **GRID)
        nnbench.run(task="wine", store=folder / "workstation.db", **GRID)
    return {"one": folder / "one.db", "laptop": folder / "laptop.db", "workstation": folder / "workstation.db"}


def test_a_grid_split_over_two_stores_merges_through_a_bundle_and_a_store_into_the_one_store_grid(
        split_grid: dict[str, Path], tmp_path: Path) -> None:
    bundle = tmp_path / "laptop.zip"
    written = CliRunner().invoke(cli, ["export", "--bundle", str(bundle), "--all", "--store",
                                       str(split_grid["laptop"])])
    assert written.exit_code == 0 and "4 trials" in written.output, written.output
    result = merge_cli(str(bundle), str(split_grid["workstation"]), "--store", str(tmp_path / "merged.db"))
    assert result.exit_code == 0, result.output
    assert f"merged {bundle} (bundle, 1 run): 4 new trials, 0 already here with the same numbers" in result.output
    assert "holds 8 trials of 2 runs" in result.output
    merged = numbers(tmp_path / "merged.db")
    assert merged == numbers(split_grid["one"]) and len(merged) == 8
    with ResultStore(tmp_path / "merged.db", readonly=True) as store:
        assert len(store.runs()) == 2 and sorted(set(store.trials()["task"])) == ["iris", "wine"]
        assert len(store.epochs()) == 16  # every curve came along
    again = merge_cli(str(bundle), str(split_grid["workstation"]), "--store", str(tmp_path / "merged.db"))
    assert again.exit_code == 0 and "0 new trials, 4 already here with the same numbers" in again.output
    assert numbers(tmp_path / "merged.db") == merged  # merging again changes nothing


def with_other_numbers(path: Path, copy: Path) -> str:
    """Copy the store ``path`` to ``copy`` with one trial's numbers changed (as another machine could give them);
    return that trial's id."""
    copy.write_bytes(path.read_bytes())
    with sqlite3.connect(copy) as db:
        trial_id = db.execute("SELECT trial_id FROM trials ORDER BY rowid LIMIT 1").fetchone()[0]
        db.execute("UPDATE trials SET metric = metric / 2, accuracy = accuracy / 2 WHERE trial_id = ?", (trial_id,))
        db.execute("UPDATE epochs SET train_loss = train_loss + 1 WHERE trial_id = ? AND epoch = 1", (trial_id,))
    return str(trial_id)


def test_the_same_trial_with_other_numbers_is_kept_from_both_sides_and_flagged(split_grid: dict[str, Path],
                                                                                tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    target.write_bytes(split_grid["laptop"].read_bytes())
    trial_id = with_other_numbers(split_grid["laptop"], tmp_path / "other.db")
    before = numbers(target)
    result = merge_cli(str(tmp_path / "other.db"), "--store", str(target))
    assert result.exit_code == 0, result.output
    assert "3 already here with the same numbers, 1 with other numbers, kept from both sides and flagged" in \
        result.output
    kept = before[trial_id][0][NUMBERS.index("metric")]
    assert f"other numbers: trial {trial_id} (iris " in result.output and f"metric {kept!r} here, {kept / 2!r}" in \
        result.output and "the curve differs at epochs 1" in result.output
    assert numbers(target) == before  # not overwritten
    with sqlite3.connect(target) as db:
        (differences, row), = db.execute("SELECT differences, trial FROM trial_conflicts WHERE trial_id = ?",
                                         (trial_id,)).fetchall()
    assert json.loads(differences) == {"metric": [kept, kept / 2], "accuracy": [kept, kept / 2], "epochs": [1]}
    assert json.loads(row)["metric"] == kept / 2  # the other copy, whole
    again = merge_cli(str(tmp_path / "other.db"), "--store", str(target))
    assert "1 with other numbers flagged at an earlier merge" in again.output
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT COUNT(*) FROM trial_conflicts").fetchone()[0] == 1
    with ResultStore(target, readonly=True) as store:
        page = build_report(store, store.run_ids()).html
    assert "Results from several machines" in page and f"trial {trial_id} (iris fnn/relu" in page
    assert "1 of these trials were stored with other numbers in a store merged into this one" in page


def test_a_flagged_copy_travels_with_its_store_and_is_not_flagged_against_itself(split_grid: dict[str, Path],
                                                                                 tmp_path: Path) -> None:
    flagged = tmp_path / "flagged.db"
    flagged.write_bytes(split_grid["laptop"].read_bytes())
    trial_id = with_other_numbers(split_grid["laptop"], tmp_path / "other.db")
    assert merge_cli(str(tmp_path / "other.db"), "--store", str(flagged)).exit_code == 0
    into_fresh = merge_cli(str(flagged), "--store", str(tmp_path / "fresh.db"))
    assert into_fresh.exit_code == 0 and "1 with other numbers, kept from both sides and flagged" in into_fresh.output
    into_other = merge_cli(str(flagged), "--store", str(tmp_path / "other.db"))  # holds the other numbers itself
    assert "1 with other numbers, kept from both sides and flagged" in into_other.output
    with sqlite3.connect(tmp_path / "other.db") as db:
        (row,), = db.execute("SELECT trial FROM trial_conflicts WHERE trial_id = ?", (trial_id,)).fetchall()
    assert json.loads(row)["metric"] == numbers(flagged)[trial_id][0][NUMBERS.index("metric")]


def test_trials_whose_code_differs_have_other_ids_and_stay_apart(tmp_path: Path, store_writer: Any,
                                                                 trial_result: Any) -> None:
    def coded(version: str, seed: int) -> Any:
        result = trial_result(seed=seed, metric=0.6 if version == "1.0" else 0.8)
        params = {**result.trial.params, "code": {"activation": f"my-activations=={version}"}}
        result.trial = dataclasses.replace(result.trial, params=params)
        return result

    old, new = [coded("1.0", s) for s in range(2)], [coded("2.0", s) for s in range(2)]
    assert {r.trial.trial_id for r in old}.isdisjoint(r.trial.trial_id for r in new)
    store_writer(tmp_path / "old.db", old, run_id="old").close()
    store_writer(tmp_path / "new.db", new, run_id="new").close()
    result = merge_cli(str(tmp_path / "old.db"), str(tmp_path / "new.db"), "--store", str(tmp_path / "both.db"))
    assert result.exit_code == 0 and "with other numbers" not in result.output
    with ResultStore(tmp_path / "both.db", readonly=True) as store:
        trials = store.trials()
    codes = trials["params"].map(lambda p: json.loads(p)["code"]["activation"])
    assert len(trials) == 4 and sorted(codes) == ["my-activations==1.0"] * 2 + ["my-activations==2.0"] * 2


def test_a_finished_result_replaces_a_failed_one_and_never_the_other_way(tmp_path: Path, store_writer: Any,
                                                                         trial_result: Any) -> None:
    store_writer(tmp_path / "failed.db", [trial_result(seed=0, status="failed", error="boom")], run_id="a").close()
    store_writer(tmp_path / "ok.db", [trial_result(seed=0, metric=0.7)], run_id="b").close()
    result = merge_cli(str(tmp_path / "ok.db"), "--store", str(tmp_path / "failed.db"))
    assert "1 finished there that failed here (the finished results kept)" in result.output
    store_writer(tmp_path / "failed-too.db", [trial_result(seed=0, status="failed", error="boom")], run_id="c").close()
    back = merge_cli(str(tmp_path / "failed-too.db"), "--store", str(tmp_path / "ok.db"))
    assert "1 failed there that finished here (left as they were)" in back.output
    for path in ("failed.db", "ok.db"):
        with ResultStore(tmp_path / path, readonly=True) as store:
            assert store.trials()[["status", "metric"]].values.tolist() == [["ok", 0.7]]


def test_merging_runs_on_other_hardware_warns_in_the_output_and_the_report(tmp_path: Path, trial_result: Any) -> None:
    for host, cores in (("laptop", 4), ("workstation", 32)):
        with ResultStore(tmp_path / f"{host}.db") as store:
            environment = {"host": host, "cpu_count": cores, "devices": {"cpu": "x86_64"}, "nnbench": "0.1.0"}
            store.start_run(f"run-{host}", {}, environment, 4, [])
            for seed in range(2):
                for activation, metric in (("relu", 0.8), ("tanh", 0.6)):
                    store.save_result(f"run-{host}", trial_result(
                        task="moons" if host == "laptop" else "circles", activation=activation, seed=seed,
                        metric=metric + seed / 100, train_time=0.5 if host == "laptop" else 0.1))
            store.finish_run(f"run-{host}")
    result = merge_cli(str(tmp_path / "laptop.db"), str(tmp_path / "workstation.db"), "--store",
                       str(tmp_path / "both.db"))
    assert "note: its trials were trained on 2 machines (laptop (4 cores; cpu x86_64); workstation (32 cores; cpu " \
           "x86_64)): time and memory compare only within one machine" in result.output
    with ResultStore(tmp_path / "both.db", readonly=True) as store:
        both = build_report(store, store.run_ids()).html
        alone = build_report(store, ["run-laptop"]).html
    assert "these trials were trained on 2 machines (laptop (4 cores; cpu x86_64): 4 trials; workstation (32 cores; " \
           "cpu x86_64): 4 trials). Time per epoch, throughput and peak memory compare only within one machine" in both
    assert both.index("Results from several machines") < both.index("Leaderboard")  # before any timing is read
    assert "Results from several machines" not in alone


def test_a_bundle_describes_itself(split_grid: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "two.db"
    source.write_bytes(split_grid["laptop"].read_bytes())
    # a later run on the same store reuses two trials and trains two: it is the run the bundle is made of
    nnbench.run(task="iris", arch="fnn", activation="relu,tanh", optimizer="adam", seeds=2, epochs=2, workers=1,
                quiet=True, store=source)
    with ResultStore(source, readonly=True) as store:
        first, second = store.run_ids()
    bundle = tmp_path / "b.zip"
    result = CliRunner().invoke(cli, ["export", "--bundle", str(bundle), second, "--store", str(source)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == sorted([MANIFEST, DATA])
        manifest = json.loads(archive.read(MANIFEST))
    assert manifest["format"] == "nnbench-bundle" and manifest["nnbench"] == nnbench.__version__
    assert manifest["schema"] == [m.__name__ for m in MIGRATIONS]
    runs = {run["run_id"]: run for run in manifest["runs"]}
    assert runs[second]["chosen"] and runs[second]["trials"] == 4
    assert not runs[first]["chosen"] and runs[first]["trials"] == 2  # the run that trained the reused trials
    assert runs[second]["hardware"]["cpu_count"] == os.cpu_count() and "devices" in runs[second]["hardware"]
    assert manifest["counts"]["trials"] == 4 and manifest["counts"]["epochs"] == 8
    assert "torch" in runs[second]["environment"] and manifest["code"] == {}
    merged = merge_cli(str(bundle), "--store", str(tmp_path / "m.db"))
    assert merged.exit_code == 0 and "4 new trials" in merged.output
    assert numbers(tmp_path / "m.db") == {k: v for k, v in numbers(source).items() if k in numbers(tmp_path / "m.db")}


def test_a_store_of_an_earlier_release_bundles_and_merges(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    old.write_bytes((ROOT / "tests" / "data" / "store-0.1.0.db").read_bytes())
    result = CliRunner().invoke(cli, ["export", "--bundle", str(tmp_path / "old.zip"), "--all", "--store", str(old)])
    assert result.exit_code == 0, result.output
    assert old.read_bytes() == (ROOT / "tests" / "data" / "store-0.1.0.db").read_bytes()
    for source in (old, tmp_path / "old.zip"):
        merged = merge_cli(str(source), "--store", str(tmp_path / f"{source.suffix[1:]}.db"))
        assert merged.exit_code == 0, merged.output
        assert numbers(tmp_path / f"{source.suffix[1:]}.db") == numbers(old)


# -- an interrupted merge ---------------------------------------------------------------------------------------


def test_a_merge_that_fails_midway_leaves_the_target_as_it_was(split_grid: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "target.db"
    target.write_bytes(split_grid["laptop"].read_bytes())
    before = target.read_bytes()
    insert = merging._insert_trials
    calls = []

    def interrupted(*args: Any, **kwargs: Any) -> None:
        insert(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # the second source, after the first is merged
            raise KeyboardInterrupt

    monkeypatch.setattr(merging, "_insert_trials", interrupted)
    with pytest.raises(KeyboardInterrupt):
        merge(target, [split_grid["workstation"], split_grid["one"]])
    assert target.read_bytes() == before
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        merge(tmp_path / "new.db", [split_grid["workstation"], split_grid["laptop"]])
    assert not list(tmp_path.glob("new.db*"))  # a target the merge made is gone with it


KILLED = """
import os, sys
from nnbench.storage import merging
insert = merging._insert_trials
def killed(*args, **kwargs):
    insert(*args, **kwargs)
    os._exit(9)  # a power cut: no rollback, no cleanup
merging._insert_trials = killed
merging.merge(sys.argv[1], sys.argv[2:])
"""


def test_a_merge_killed_midway_leaves_the_target_as_it_was(split_grid: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    target.write_bytes(split_grid["laptop"].read_bytes())
    before = numbers(target)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KILLED, str(target), str(split_grid["workstation"])], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    assert numbers(target) == before
    with ResultStore(target) as store:  # opens, and writes, as before
        assert len(store.trials()) == 4 and len(store.runs()) == 1


# -- bad input: one line, and the target unchanged ------------------------------------------------------------


@pytest.fixture
def target(split_grid: dict[str, Path], tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "target.db"
    path.write_bytes(split_grid["laptop"].read_bytes())
    before = path.read_bytes()
    yield path
    assert path.read_bytes() == before


def one_line(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return str(lines[0])


def rewrite_manifest(bundle: Path, copy: Path, **changes: Any) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read(MANIFEST))
        data = archive.read(DATA)
    with zipfile.ZipFile(copy, "w") as archive:
        archive.writestr(MANIFEST, json.dumps({**manifest, **changes}))
        archive.writestr(DATA, data)
    return copy


@pytest.fixture
def bundle(split_grid: dict[str, Path], tmp_path: Path) -> Path:
    path = tmp_path / "w.zip"
    assert CliRunner().invoke(cli, ["export", "--bundle", str(path), "--store",
                                    str(split_grid["workstation"])]).exit_code == 0
    return path


def test_a_source_that_is_neither_a_store_nor_a_bundle(target: Path, tmp_path: Path,
                                                       split_grid: dict[str, Path]) -> None:
    (tmp_path / "notes.txt").write_text("not results")
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE things (x)")
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        archive.writestr("a.txt", "x")
    cases = {tmp_path / "notes.txt": "notes.txt is neither an nnbench store nor a bundle",
             tmp_path / "other.db": "other.db is an SQLite database but not an nnbench store",
             tmp_path / "photos.zip": "photos.zip is a zip archive but not an nnbench bundle",
             tmp_path / "missing.db": "cannot merge " + str(tmp_path / "missing.db") + ": no such file",
             target: "it is the --store target"}
    for source, expected in cases.items():
        # the good source first: nothing is merged until every source passed
        assert expected in one_line(merge_cli(str(split_grid["workstation"]), str(source), "--store", str(target)))


def test_a_truncated_or_damaged_bundle(target: Path, bundle: Path, tmp_path: Path) -> None:
    whole = bundle.read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    assert "bundle " + str(tmp_path / "cut.zip") + " is truncated or damaged" in one_line(
        merge_cli(str(tmp_path / "cut.zip"), "--store", str(target)))
    with zipfile.ZipFile(bundle) as archive:
        manifest, data = archive.read(MANIFEST), archive.read(DATA)
    with zipfile.ZipFile(tmp_path / "swapped.zip", "w") as archive:
        archive.writestr(MANIFEST, manifest)
        archive.writestr(DATA, data[:-4096])
    assert "is damaged: its results do not match the checksum its manifest records" in one_line(
        merge_cli(str(tmp_path / "swapped.zip"), "--store", str(target)))


def test_a_bundle_from_a_newer_nnbench_or_schema(target: Path, bundle: Path, tmp_path: Path) -> None:
    newer = rewrite_manifest(bundle, tmp_path / "newer.zip", nnbench="99.0.0")
    assert f"was written by nnbench 99.0.0, newer than this nnbench {nnbench.__version__}; upgrade nnbench" in \
        one_line(merge_cli(str(newer), "--store", str(target)))
    schema = rewrite_manifest(bundle, tmp_path / "schema.zip",
                              schema=[*(m.__name__ for m in MIGRATIONS), "m999_from_the_future"])
    assert "holds a store of a newer schema (migration 'm999_from_the_future'" in one_line(
        merge_cli(str(schema), "--store", str(target)))
    layout = rewrite_manifest(bundle, tmp_path / "layout.zip", format_version=2)
    assert "in bundle format 2, newer than this nnbench" in one_line(merge_cli(str(layout), "--store", str(target)))


def test_a_store_of_a_newer_release_as_source(target: Path, split_grid: dict[str, Path], tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    newer.write_bytes(split_grid["workstation"].read_bytes())
    with sqlite3.connect(newer) as db:
        db.execute("INSERT INTO migrations VALUES ('m999_from_the_future', 'later')")
    assert "it was written by a newer nnbench (it holds the migration 'm999_from_the_future')" in one_line(
        merge_cli(str(newer), "--store", str(target)))


def test_a_read_only_target(split_grid: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    target = folder / "target.db"
    target.write_bytes(split_grid["laptop"].read_bytes())
    before = target.read_bytes()
    for path in (target, folder):
        make_unwritable(path, True)
    try:
        line = one_line(merge_cli(str(split_grid["workstation"]), "--store", str(target)))
    finally:
        for path in (folder, target):
            make_unwritable(path, False)
    assert f"cannot write to store {target}: it is read-only (" in line
    assert target.read_bytes() == before


def test_a_store_without_runs_has_nothing_to_bundle(tmp_path: Path) -> None:
    ResultStore(tmp_path / "empty.db").close()
    line = one_line(CliRunner().invoke(cli, ["export", "--bundle", str(tmp_path / "b.zip"), "--all", "--store",
                                             str(tmp_path / "empty.db")]))
    assert f"store {tmp_path / 'empty.db'} holds no runs yet" in line and not (tmp_path / "b.zip").exists()
