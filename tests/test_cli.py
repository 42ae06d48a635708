"""The command line through click's CliRunner, the Python API and lifecycle hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import nnbench
from nnbench import hookimpl
from nnbench.cli import cli
from nnbench.storage.store import ResultStore

SMALL = ["--task", "iris,moons", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer", "adam",
         "--seeds", "2", "--epochs", "2", "--quiet"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNBENCH_PLUGINS", "none")
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_help_on_every_command(runner: CliRunner) -> None:
    for command in ([], ["run"], ["list"], ["plugins"], ["export"]):
        result = invoke(runner, *command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_list_shows_every_kind_with_descriptions_and_plugins(runner: CliRunner) -> None:
    result = invoke(runner, "list")
    assert result.exit_code == 0
    for header in ("activations (14)", "losses (9)", "optimizers (12)", "architectures (5)", "tasks (16)"):
        assert header in result.output
    assert "(plugin: nnbench.builtin.tasks)" in result.output
    only = invoke(runner, "list", "optimizers", "adam*")
    assert "optimizers (3)" in only.output and "sgd" not in only.output


def test_plugins_lists_hooks_and_components(runner: CliRunner) -> None:
    result = invoke(runner, "plugins")
    assert "nnbench.builtin.losses  (builtin" in result.output
    assert "hooks: register_losses" in result.output
    assert "losses: cross_entropy" in result.output


def test_run_trains_stores_and_prints_a_leaderboard(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "run", *SMALL)
    assert result.exit_code == 0, result.output
    assert "8 trials: 8 to train, 0 already stored" in result.output
    assert "iris — test accuracy (higher is better)" in result.output
    assert "fnn/relu/cross_entropy/adam@0.001" in result.output and "n=2" in result.output
    with ResultStore(tmp_path / "nnbench.db") as store:
        trials = store.trials()
        assert len(trials) == 8 and set(trials["status"]) == {"ok"}
        assert len(store.epochs()) == 16


def test_running_again_resumes_and_force_retrains(runner: CliRunner, tmp_path: Path) -> None:
    invoke(runner, "run", *SMALL)
    again = invoke(runner, "run", *SMALL)
    assert "8 trials: 0 to train, 8 already stored" in again.output
    assert "iris — test accuracy" in again.output  # the leaderboard still covers the reused trials
    forced = invoke(runner, "run", *SMALL, "--force")
    assert "8 trials: 8 to train" in forced.output
    with ResultStore(tmp_path / "nnbench.db") as store:
        assert len(store.trials()) == 8
        assert len(store.runs()) == 3


def test_dry_run_lists_trials_without_training(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "run", *SMALL, "--arch", "fnn,cnn", "--dry-run")
    assert result.exit_code == 0
    assert "8 trials: 8 to train" in result.output and "4 combinations skipped" in result.output
    assert "architecture cnn reads image/sequence inputs; task iris offers vector" in result.output
    assert result.output.count("[to train]") == 8
    assert not (tmp_path / "nnbench.db").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--activation", "rleu"], "unknown activation 'rleu'; did you mean 'relu'?"),
    (["--epochs", "0"], "epochs must be an integer >= 1, not 0"),
    (["--lr", "-0.1"], "learning rates must be finite numbers > 0"),
    (["--batch-size", "0"], "batch size must be an integer >= 1"),
    (["--seeds", "0"], "seeds must be an integer >= 1"),
    (["--loss", "bce", "--task", "iris"], "no combination in the grid is compatible"),
    (["--device", "cuda:99"], "device 'cuda:99' is not available; devices here: {devices}"),
    (["--store", "missing/folder/r.db"], "folder missing/folder does not exist"),
    (["--set", "arch.fnn.hidden=abc"], "architecture 'fnn' cannot be built for task 'iris'"),
    (["--set", "optimizer.adam.betas=5"], "optimizer 'adam' rejects its hyper-parameters {'betas': 5}"),
    (["--target-metric", "nosuch=0.5"], "--target-metric names task 'nosuch', which is not in the grid"),
    (["--workers", "0"], "--workers must be a whole number >= 1 or auto, not 0"),
    (["--workers", "two"], "--workers must be a whole number >= 1 or auto, not 'two'"),
    (["--per-device", "-1"], "--per-device must be a whole number >= 1 or auto, not -1"),
])
def test_bad_input_is_one_clear_line_and_loses_nothing(runner: CliRunner, tmp_path: Path, args: list[str],
                                                       message: str) -> None:
    from nnbench.session import Session

    invoke(runner, "run", *SMALL)
    before = (tmp_path / "nnbench.db").read_bytes()
    result = invoke(runner, "run", *SMALL, *args)
    assert result.exit_code == 1
    assert message.replace("{devices}", ", ".join(Session().catalogue.devices)) in result.output  # whatever is here
    assert "Traceback" not in result.output
    with ResultStore(tmp_path / "nnbench.db") as store:
        assert len(store.trials()) == 8
    assert len(before) > 0


def test_invalid_grid_file_names_file_and_line(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text('[grid]\ntask = ["iris"]\nepochs = two\n')
    result = invoke(runner, "run", "grid.toml")
    assert result.exit_code == 1 and "grid.toml is not valid TOML" in result.output and "line 3" in result.output


def test_export_csv(runner: CliRunner, tmp_path: Path) -> None:
    invoke(runner, "run", *SMALL)
    result = invoke(runner, "export", "-o", "out.csv")
    assert result.exit_code == 0 and "wrote 8 rows" in result.output
    frame = pd.read_csv(tmp_path / "out.csv")
    assert len(frame) == 8 and {"trial_id", "metric", "activation"} <= set(frame.columns)
    curves = invoke(runner, "export", "--epochs", "-o", "curves.csv")
    assert "wrote 16 rows" in curves.output
    bad = invoke(runner, "export", "-o", "out.xlsx")
    assert bad.exit_code == 1 and "must end in .csv or .parquet" in bad.output


def test_python_api_returns_a_dataframe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNBENCH_PLUGINS", "none")
    frame = nnbench.run(task="moons", arch="fnn", activation=["relu", "tanh"], optimizer="adam", seeds=2,
                        epochs=2, store=tmp_path / "api.db")
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 4 and set(frame["activation"]) == {"relu", "tanh"}
    assert frame["metric"].between(0, 1).all()


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def before_run(self, run_id: str, trials: list[Any]) -> None:
        self.events.append(f"before_run {len(trials)}")

    @hookimpl
    def after_epoch(self, trial: Any, record: Any) -> None:
        self.events.append(f"epoch {record.epoch}")

    @hookimpl
    def after_trial(self, trial: Any, result: Any) -> None:
        self.events.append(f"trial {result.status}")

    @hookimpl
    def after_run(self, run_id: str, results: list[Any]) -> None:
        self.events.append(f"after_run {len(results)}")


def test_lifecycle_hooks_are_called_in_order(nnbench_plugin: Any, tmp_path: Path) -> None:
    recorder = Recorder()
    nnbench_plugin(recorder)
    nnbench.run(task="moons", arch="fnn", activation="relu", optimizer="adam", seeds=2, epochs=2,
                store=tmp_path / "hooks.db")
    # seeds of one configuration may train together, so their epochs can interleave
    assert recorder.events[0] == "before_run 2" and recorder.events[-1] == "after_run 2"
    assert sorted(recorder.events[1:-1]) == ["epoch 1", "epoch 1", "epoch 2", "epoch 2", "trial ok", "trial ok"]
    assert recorder.events.index("trial ok") > recorder.events.index("epoch 2")




def test_a_grid_that_fails_its_checks_creates_no_store(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "run", *SMALL, "--activation", "rleu", "--store", "fresh.db")
    assert result.exit_code == 1 and not (tmp_path / "fresh.db").exists()


def test_report_and_export_only_read_the_store(runner: CliRunner, tmp_path: Path) -> None:
    invoke(runner, "run", *SMALL, "--no-report")
    before = (tmp_path / "nnbench.db").read_bytes()
    assert invoke(runner, "report", "-o", "r.html").exit_code == 0
    assert invoke(runner, "export", "-o", "r.csv").exit_code == 0
    assert (tmp_path / "nnbench.db").read_bytes() == before
    empty = tmp_path / "empty.db"
    empty.touch()
    result = invoke(runner, "report", "--store", str(empty))
    assert result.exit_code == 1 and "is empty, not an nnbench store" in result.output
    assert empty.read_bytes() == b""


def test_list_says_when_nothing_matches(runner: CliRunner) -> None:
    result = invoke(runner, "list", "zz*")
    assert result.exit_code == 1 and "no component matches 'zz*'" in result.output


@pytest.mark.parametrize("workers", [1, 2])
def test_lifecycle_hooks_that_raise_are_named_once_disabled_and_harm_no_trial(
        nnbench_plugin: Any, tmp_path: Path, workers: int) -> None:
    import warnings

    from faulty_hooks import RaisingHooks

    from nnbench.loading.plugins import PluginHookWarning

    hooks = nnbench_plugin(RaisingHooks(), name="raising-hooks")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = nnbench.run(task="moons", arch="fnn", activation="relu,tanh", optimizer="adam", seeds=2, epochs=3,
                            store=tmp_path / "hooks.db", workers=workers)
    assert list(frame["status"]) == ["ok"] * 4
    with ResultStore(tmp_path / "hooks.db", readonly=True) as store:
        assert list(store.runs()["status"]) == ["finished"]
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginHookWarning)]
    for hook in ("before_run", "after_trial", "after_run", "after_epoch"):
        named = [m for m in messages if f"raised in {hook} " in m]
        # workers receive in-process plugins under the names they were registered with
        assert named and "'raising-hooks'" in named[0] and "disabled for the rest of this run" in named[0], messages
        assert "\n" not in named[0]
    parent_calls = {"before_run": 1, "after_trial": 1, "after_run": 1}
    assert {k: hooks.calls[k] for k in parent_calls} == parent_calls  # each called until it raised, not after
    assert hooks.calls["after_epoch"] == (1 if workers == 1 else 0)  # with workers it runs (and fails) there


def test_a_plugin_that_calls_sys_exit_at_import_does_not_stop_list_or_plugins(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    site = tmp_path / "site"
    (site / "quitter-1.0.dist-info").mkdir(parents=True)
    (site / "quitter.py").write_text("import sys\nsys.exit('no')\n")
    (site / "quitter-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: quitter\nVersion: 1.0\n")
    (site / "quitter-1.0.dist-info" / "entry_points.txt").write_text("[nnbench]\nquitter = quitter\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("NNBENCH_PLUGINS", "quitter")
    monkeypatch.delitem(sys.modules, "quitter", raising=False)
    for command in (["list", "optimizers"], ["plugins"]):
        result = runner.invoke(cli, command, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert "adam" in invoke(runner, "list", "optimizers").output


@pytest.mark.parametrize(("arguments", "code"), [(["--version"], 0), (["run", "--seeds", "0"], 1)])
def test_the_console_script_leaves_its_objects_out_of_the_collectors_last_passes(arguments: list[str],
                                                                                  code: int) -> None:
    import subprocess
    import sys

    probe = ("import atexit, gc, sys\n"
             "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, file=sys.stderr))\n"
             "from nnbench.cli import main\n"
             f"sys.argv = ['nnbench', *{arguments!r}]\n"
             "main()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == code  # the command's own exit status, error or not
    assert done.stderr.strip().endswith("frozen True")
