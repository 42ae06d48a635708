"""Hostile input: each class ends in one clear line, a non-zero exit, and a store whose earlier rows
all still report and export."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from report_outline import IMAGE_PREFIXES
from test_store_faults import one_line_error
from torch import nn

import nnbench
from nnbench import Architecture, Optimizer, hookimpl
from nnbench.cli import cli
from nnbench.storage.store import ResultStore

SMALL = ["--task", "moons", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer", "adam", "--seeds", "2",
         "--epochs", "2", "--quiet", "--no-report"]
DEEP = "[" * 40 + "]" * 40


@pytest.fixture
def stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A working folder whose store holds one finished run of SMALL."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["run", *SMALL], catch_exceptions=False).exit_code == 0
    return runner


def store_rows(path: Path) -> tuple[int, int, int]:
    with sqlite3.connect(path) as db:
        return tuple(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("runs", "trials", "epochs"))


def refused(runner: CliRunner, args: list[str], message: str, tmp_path: Path) -> None:
    before = store_rows(tmp_path / "nnbench.db")
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code != 0
    error = one_line_error(result.output)
    assert message in error and len(error) < 400, result.output
    assert store_rows(tmp_path / "nnbench.db") == before


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "optimizer.adam.eps=inf"], "holds inf, which is not a finite number"),
    (["--set", "optimizer.adam.eps=nan"], "holds nan, which is not a finite number"),
    (["--set", "arch.fnn.hidden=[4, -inf]"], "holds -inf, which is not a finite number"),
    (["--target-metric", "nan"], "--target-metric must be finite numbers"),
    (["--target-metric", "moons=inf"], "--target-metric must be finite numbers"),
    (["--timeout", "inf"], "--timeout must be a finite number of seconds > 0"),
    (["--timeout", "nan"], "--timeout must be a finite number of seconds > 0"),
    (["--lr", "inf"], "learning rates must be finite numbers > 0"),
    (["--threads", "100000"], "--threads must be between 1 and"),
    (["--seeds", "1000000000"], "the grid has up to 2,000,000,000 trials"),
    (["--max-trials", "3"], "more than the bound of 3; narrow the grid or raise the bound with --max-trials N"),
    (["--schedule", "step", "--set", "schedule.step.gamma=abc"], "schedule 'step' rejects its hyper-parameters"),
    (["--set", f"arch.fnn.hidden={DEEP}"], "nests lists or tables more than 32 levels deep"),
    (["--set", f"arch.fnn.hidden={'[' * 3000}{']' * 3000}"], "nests lists or tables too deeply"),
])
def test_bad_run_input_is_one_line_before_anything_is_stored(stored: CliRunner, tmp_path: Path, args: list[str],
                                                             message: str) -> None:
    refused(stored, ["run", *SMALL, *args], message, tmp_path)


def test_the_bound_on_a_grid_can_be_raised(stored: CliRunner) -> None:
    result = stored.invoke(cli, ["run", *SMALL, "--max-trials", "4", "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0 and "4 trials: 0 to train, 4 already stored" in result.output


@pytest.mark.parametrize("depth", [40, 3000])
def test_deeply_nested_grid_files_are_one_line(stored: CliRunner, tmp_path: Path, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    (tmp_path / "deep.toml").write_text(f"[grid]\ntask = [\"moons\"]\n[arch.fnn]\nhidden = {nested}\n")
    refused(stored, ["run", "deep.toml", "--quiet"], "grid file deep.toml nests", tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["--max-time", "nan"], "--max-time must be a finite number of seconds > 0"),
    (["--benchmark-json", "missing/out.json"], "folder missing does not exist"),
])
def test_bad_micro_input_is_one_line(stored: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    refused(stored, ["micro", "--kind", "activation", "--name", "relu", *args], message, tmp_path)


class InfiniteDefault:
    @hookimpl
    def register_optimizers(self, register: Any) -> None:
        register(Optimizer("endless", torch.optim.SGD, 0.1, "momentum without end", {"momentum": float("inf")}))


def test_a_plugins_non_finite_default_is_refused_naming_the_plugin(stored: CliRunner, tmp_path: Path,
                                                                  nnbench_plugin: Any) -> None:
    nnbench_plugin(InfiniteDefault(), name="infinite-plugin")
    refused(stored, ["run", *SMALL, "--optimizer", "endless"],
            "hyper-parameter 'momentum' of optimizer 'endless' (plugin 'infinite-plugin'", tmp_path)


def write_csv(path: Path, bad: str | None = None, column: str = "b", rows: int = 60) -> Path:
    rng = np.random.default_rng(0)
    lines = ["a,b,y"]
    for i in range(rows):
        values = {"a": f"{rng.normal():.4f}", "b": f"{rng.normal():.4f}", "y": str(i % 2)}
        if bad is not None and i == 7:
            values[column] = bad
        lines.append(",".join(values[c] for c in ("a", "b", "y")))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("bad", "column", "message"), [
    ("inf", "b", "column 'b' of data.csv holds inf at row 9; every value must be a finite number"),
    ("-inf", "a", "column 'a' of data.csv holds -inf at row 9"),
    ("1e308", "b", "column 'b' of data.csv holds numbers too large to standardize (1e+308 at row 9)"),
])
def test_csv_values_that_cannot_train_are_blamed_on_the_data(stored: CliRunner, tmp_path: Path, bad: str,
                                                             column: str, message: str) -> None:
    write_csv(tmp_path / "data.csv", bad, column)
    refused(stored, ["run", *SMALL, "--task", "csv:data.csv", "--target", "y"], message, tmp_path)


def test_a_regression_target_of_inf_is_blamed_on_the_data(stored: CliRunner, tmp_path: Path) -> None:
    lines = ["a,y"] + [f"{i},{i * 0.5 if i != 3 else 'inf'}" for i in range(80)]
    (tmp_path / "reg.csv").write_text("\n".join(lines) + "\n")
    refused(stored, ["run", *SMALL, "--task", "csv:reg.csv", "--target", "y"],
            "target column 'y' of reg.csv holds inf at row 5", tmp_path)


def test_a_folder_given_as_a_csv_file_is_named_a_folder(stored: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    refused(stored, ["run", *SMALL, "--task", "csv:tables", "--target", "y"],
            "tables (from task 'csv:tables') is a folder; give a CSV file", tmp_path)


def test_a_csv_path_with_commas_is_one_task(stored: CliRunner, tmp_path: Path) -> None:
    write_csv(tmp_path / "runs,2026.csv")
    result = stored.invoke(cli, ["run", *SMALL, "--task", "csv:runs,2026.csv,moons", "--target", "y", "--dry-run"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "csv:runs,2026.csv" in result.output and "8 trials" in result.output


def test_class_labels_in_messages_are_plain_numbers(stored: CliRunner, tmp_path: Path) -> None:
    lines = ["a,y"] + [f"{i},{0 if i < 2 else 1}" for i in range(40)]
    (tmp_path / "rare.csv").write_text("\n".join(lines) + "\n")
    refused(stored, ["run", *SMALL, "--task", "csv:rare.csv", "--target", "y"],
            "class 0 of target column 'y' in rare.csv has only 2 row(s)", tmp_path)


class Widening(nn.Module):
    """Right width for the first two calls (the trainer's checks), one output more after that."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.layer, self.calls = nn.Linear(inputs, outputs + 1), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.layer(x)
        return out[:, :-1] if self.calls <= 2 else out


class WideningArchitecture:
    @hookimpl
    def register_architectures(self, register: Any) -> None:
        register(Architecture("widening", lambda spec, outputs, activation: Widening(spec.shape[0], outputs),
                              ("vector",), "changes its output width after its first calls"))


def test_a_model_whose_output_width_changes_while_training_is_not_stored_ok(nnbench_plugin: Any,
                                                                            tmp_path: Path) -> None:
    nnbench_plugin(WideningArchitecture())
    frame = nnbench.run(task="toy", arch="widening", activation="relu", optimizer="adam", loss="mse", seeds=1,
                        epochs=2, store=tmp_path / "w.db")
    assert list(frame["status"]) == ["failed"]
    assert "changed its output width during training" in frame["error"].iloc[0]


def test_names_holding_dollar_signs_are_plain_text_in_every_figure(stored: CliRunner, tmp_path: Path) -> None:
    write_csv(tmp_path / "cost_in_$_and_$.csv")
    run = stored.invoke(cli, ["run", "--task", "csv:cost_in_$_and_$.csv,moons", "--target", "y", "--arch", "fnn",
                              "--activation", "relu,tanh,gelu", "--optimizer", "adam,sgd", "--seeds", "2",
                              "--epochs", "2", "--quiet"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    page = next((tmp_path / "reports").glob("*/index.html")).read_text()
    assert "cost_in_$_and_$.csv" in page
    assert sum(page.count(prefix) for prefix in IMAGE_PREFIXES) >= 4


def test_a_store_already_holding_non_finite_json_still_reports_and_exports(stored: CliRunner, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "nnbench.db") as db:  # what an earlier release let in
        db.execute("""UPDATE trials SET params = '{"arch": {}, "optimizer": {"eps": Infinity}}' WHERE rowid = 1""")
        db.execute("""UPDATE runs SET grid = '{"task": ["moons"], "timeout": NaN, "seeds": 2}'""")
    for args in (["report", "-o", "one.html"], ["report", "--all", "-o", "all.html"],
                 ["export", "--all", "-o", "all.csv"], ["export", "-o", "latest.csv"]):
        result = stored.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
    with ResultStore(tmp_path / "nnbench.db", readonly=True) as store:
        assert len(store.trials()) == 4


# -- refused before anything trains, and never echoed whole ---------------------------------------------

LONG = "x" * 10_240  # a 10 kB name


@pytest.mark.parametrize(("args", "message"), [
    (["--max-trials", "0"], "--max-trials must be a whole number >= 1 (the most trials the grid may have), not 0"),
    (["--max-trials", "-1"], "--max-trials must be a whole number >= 1 (the most trials the grid may have), not -1"),
])
def test_a_bound_on_the_grid_below_one_trial_is_refused(stored: CliRunner, tmp_path: Path, args: list[str],
                                                        message: str) -> None:
    refused(stored, ["run", *SMALL, *args], message, tmp_path)


@pytest.mark.parametrize("where", [["--task", LONG], ["--activation", LONG], ["--store", LONG + ".db"],
                                   ["--store", f"{LONG}/nnbench.db"], [LONG + ".toml"], ["--set", LONG],
                                   ["--threads", LONG], ["--executor", LONG], ["--report-dir", LONG]])
def test_a_ten_kilobyte_name_is_shortened_in_its_one_error_line(stored: CliRunner, tmp_path: Path,
                                                                where: list[str]) -> None:
    before = store_rows(tmp_path / "nnbench.db")
    command = ["run", *[a for a in SMALL if a != "--no-report"], *where]
    result = stored.invoke(cli, command, catch_exceptions=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output[:2000]
    assert len(lines[0]) < 500 and "xxxxx…xxxxx" in lines[0] and "(10,2" in lines[0], lines[0][:600]
    assert len(result.output) < 1000
    assert store_rows(tmp_path / "nnbench.db") == before


def test_a_ten_kilobyte_store_path_for_report_and_export_is_one_line(stored: CliRunner) -> None:
    for command in (["report", "--store", LONG], ["export", "--store", LONG, "-o", "x.csv"],
                    ["report", "-o", f"{LONG}/report.html"]):
        result = stored.invoke(cli, command, catch_exceptions=False)
        assert result.exit_code == 1 and "Traceback" not in result.output
        (line,) = result.output.splitlines()
        assert line.startswith("Error: ") and len(line) < 400 and "File name too long" in line, line[:500]


def test_an_unwritable_report_folder_is_found_before_anything_trains(stored: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "reports-file"
    blocker.write_text("not a folder")
    before = store_rows(tmp_path / "nnbench.db")
    more = ["--task", "circles", "--arch", "fnn", "--activation", "relu", "--optimizer", "adam", "--seeds", "1",
            "--epochs", "1", "-q"]
    for report_dir, code, message in ((blocker / "runs", 1, f"cannot write the report to {blocker / 'runs'} "
                                                            f"({blocker} is a file, not a folder); give a writable "
                                                            "--report-dir, or --no-report; nothing was trained"),
                                      (blocker, 2, "is a file")):  # refused by the option itself
        result = stored.invoke(cli, ["run", *more, "--report-dir", str(report_dir)], catch_exceptions=False)
        assert result.exit_code == code
        line = one_line_error(result.output)
        assert message in line
        assert store_rows(tmp_path / "nnbench.db") == before  # not one trial trained for a report it cannot write
    assert blocker.read_text() == "not a folder"
    trained = stored.invoke(cli, ["run", *more, "--report-dir", str(tmp_path / "new" / "reports")],
                            catch_exceptions=False)
    assert trained.exit_code == 0 and (tmp_path / "new" / "reports").is_dir()


def test_a_ten_kilobyte_name_is_shortened_in_the_error_a_script_sees(tmp_path: Path) -> None:
    from nnbench.contract.errors import NNBenchError

    with pytest.raises(NNBenchError) as info:
        nnbench.run(task=LONG, arch="fnn", seeds=1, epochs=1, store=tmp_path / "x.db", quiet=True)
    shown = str(info.value)
    assert shown.startswith("unknown task 'xxx") and "…" in shown and "(10,242 characters)" in shown
    assert len(shown) < 400
    assert LONG in info.value.args[0]  # the whole value stays with the error, for code that reads it
    assert not (tmp_path / "x.db").exists()
