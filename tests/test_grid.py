"""Grid files, flags, expansion and compatibility rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nnbench.contract.domain import build_domain
from nnbench.contract.errors import UnknownComponentError
from nnbench.planning.grid import GridError, default_grid, expand_grid, incompatibility, takes_keyword
from nnbench.planning.gridfile import build_grid, load_grid_file, parse_assignment


def grid(**axes: Any) -> Any:
    base = {"task": "iris", "arch": "fnn", "activation": "relu", "loss": "default", "optimizer": "adam",
            "lr": "default", "seeds": 1, "epochs": 1, "batch_size": 32}
    return build_grid(None, **{**base, **axes})


def test_expansion_is_the_product_of_the_axes_with_seeds_innermost(catalogue: Any) -> None:
    trials, skipped = expand_grid(grid(activation="relu,tanh", optimizer="sgd,adam", lr="0.1,0.01", seeds=3),
                                  catalogue)
    assert len(trials) == 2 * 2 * 2 * 3
    assert not skipped
    assert [t.seed for t in trials[:3]] == [0, 1, 2]
    assert len({t.trial_id for t in trials}) == len(trials)


def test_default_lr_is_each_optimizers_own(catalogue: Any) -> None:
    trials, _ = expand_grid(grid(optimizer="sgd,adam,adadelta"), catalogue)
    assert {t.optimizer: t.lr for t in trials} == {"sgd": 0.05, "adam": 1e-3, "adadelta": 1.0}


def test_default_loss_follows_the_task_kind(catalogue: Any) -> None:
    trials, _ = expand_grid(grid(task="iris,diabetes"), catalogue)
    assert {t.task: t.loss for t in trials} == {"iris": "cross_entropy", "diabetes": "mse"}


@pytest.mark.parametrize(("task", "arch", "loss", "ok"), [
    ("iris", "fnn", "cross_entropy", True),
    ("iris", "cnn", "cross_entropy", False),      # vectors are not images
    ("iris", "lstm", "cross_entropy", False),
    ("digits", "cnn", "cross_entropy", True),
    ("digits", "lstm", "cross_entropy", True),    # an image read as a sequence of rows
    ("adding", "cnn", "mse", True),               # a sequence read as a 1-D signal
    ("iris", "fnn", "bce", False),                # BCE is binary only
    ("spirals", "fnn", "bce_with_logits", True),
    ("iris", "fnn", "mse", True),                 # MSE on one-hot targets
    ("diabetes", "fnn", "cross_entropy", False),  # no classes in a regression
    ("diabetes", "fnn", "huber", True),
])
def test_compatibility_rules(catalogue: Any, task: str, arch: str, loss: str, ok: bool) -> None:
    reason = incompatibility(catalogue, catalogue.tasks.get(task), arch, loss)
    assert (reason is None) is ok
    if not ok:
        assert task in reason


def test_incompatible_combinations_are_skipped_with_a_reason(catalogue: Any) -> None:
    trials, skipped = expand_grid(grid(task="iris,digits", arch="fnn,cnn"), catalogue)
    assert {(t.task, t.arch) for t in trials} == {("iris", "fnn"), ("digits", "fnn"), ("digits", "cnn")}
    assert len(skipped) == 1
    assert skipped[0].combination["arch"] == "cnn" and "iris" in skipped[0].reason


def test_a_grid_with_nothing_compatible_explains_why(catalogue: Any) -> None:
    with pytest.raises(GridError, match="nothing to train(.|\n)*bce trains binary tasks; task iris is multiclass"):
        expand_grid(grid(loss="bce"), catalogue)


def test_exclude_drops_partial_combinations(catalogue: Any) -> None:
    spec = grid(optimizer="sgd,adam,adadelta", arch="fnn", task="digits")
    spec.exclude = [{"optimizer": "adadelta"}, {"optimizer": "sgd", "task": "digits"}]
    trials, skipped = expand_grid(spec, catalogue)
    assert {t.optimizer for t in trials} == {"adam"}
    assert [s.reason for s in skipped] == ["excluded by the grid"] * 2
    spec.exclude = [{"loss": "default", "optimizer": "adam"}]  # rules may name the grid's own words
    assert {t.optimizer for t in expand_grid(spec, catalogue)[0]} == {"sgd", "adadelta"}


def test_overrides_change_params_and_trial_id(catalogue: Any) -> None:
    plain, _ = expand_grid(grid(), catalogue)
    wide, _ = expand_grid(build_grid(None, ["arch.fnn.hidden=[128,128]"], **grid().to_dict() | {"overrides": {}}),
                          catalogue)
    assert plain[0].params["arch"]["hidden"] == [64, 64]
    assert wide[0].params["arch"]["hidden"] == [128, 128]
    assert plain[0].trial_id != wide[0].trial_id


def test_trial_id_is_stable_across_processes(catalogue: Any) -> None:
    trials, _ = expand_grid(grid(), catalogue)
    code = ("from nnbench.planning.gridfile import build_grid; from nnbench.planning.grid import expand_grid;"
            "from nnbench.loading.catalogue import collect_catalogue;"
            "from nnbench.loading.plugins import make_plugin_manager;"
            "c = collect_catalogue(make_plugin_manager(load_entry_points=False));"
            "g = build_grid(None, task='iris', arch='fnn', activation='relu', loss='default', optimizer='adam',"
            " lr='default', seeds=1, epochs=1, batch_size=32);"
            "print(expand_grid(g, c)[0][0].trial_id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert out == trials[0].trial_id


def test_wildcards_and_all_expand_against_the_registry(catalogue: Any) -> None:
    trials, _ = expand_grid(grid(optimizer="adam*", activation="all"), catalogue)
    assert {t.optimizer for t in trials} == {"adam", "adamw", "adamax"}
    assert {t.activation for t in trials} == set(catalogue.activations)


@pytest.mark.parametrize(("axes", "message"), [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"seeds": 0}, "seeds must be an integer >= 1"),
    ({"batch_size": -5}, "batch size must be an integer >= 1"),
    ({"lr": "0"}, "learning rates must be finite numbers > 0"),
    ({"lr": "fast"}, "learning rates must be numbers > 0 or 'default', not 'fast'"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"lr": "inf"}, "learning rates must be finite numbers > 0"),
    ({"lr": [True]}, "learning rates must be numbers > 0 or 'default', not True"),
    ({"device": ""}, "the device axis is empty"),
    ({"clip": ""}, "the clip axis is empty"),
    ({"epochs": 1e400}, "epochs must be an integer >= 1, not inf"),
])
def test_out_of_range_values_are_rejected(catalogue: Any, axes: dict[str, Any], message: str) -> None:
    with pytest.raises(GridError, match=message):
        expand_grid(grid(**axes), catalogue)


def test_unknown_names_say_kind_name_closest_and_available(catalogue: Any) -> None:
    with pytest.raises(UnknownComponentError, match="unknown optimizer 'adm'; did you mean 'adam'"):
        expand_grid(grid(optimizer="adm"), catalogue)
    with pytest.raises(GridError, match="no activation matches 'zz\\*'"):
        expand_grid(grid(activation="zz*"), catalogue)


def test_unknown_hyper_parameter_is_named(catalogue: Any) -> None:
    # the build-stage kinds (norm) are axes of the grid, not hyper-parameters of the architecture
    message = "architecture 'fnn' has no hyper-parameter 'hiden'; it takes: dropout, hidden$"
    with pytest.raises(GridError, match=message):
        expand_grid(build_grid(None, ["arch.fnn.hiden=3"]), catalogue)


@pytest.mark.parametrize(("assignment", "message"), [
    ("arch.fnn.norm='batch'", "architecture 'fnn' has no hyper-parameter 'norm'; it takes: dropout, hidden$"),
    ("optimizer.sgd.lr=0.5", "optimizer 'sgd' has no hyper-parameter 'lr'; it takes: dampening, differentiable, "
                             "foreach, fused, maximize, momentum, nesterov, weight_decay$"),
    # a plugin kind's factory is checked by its stage's inputs (an initializer takes the model first)
    ("initializer.xavier_uniform.gian=2.0", "initializer 'xavier_uniform' has no hyper-parameter 'gian'; "
                                            "it takes: gain$"),
])
def test_overrides_are_checked_against_what_each_factory_takes(catalogue: Any, assignment: str, message: str) -> None:
    with pytest.raises(GridError, match=message):
        expand_grid(build_grid(None, [assignment], domain=catalogue.domain, initializer="xavier_uniform"), catalogue)


def test_an_override_may_set_any_keyword_the_factory_takes_beyond_its_defaults(catalogue: Any) -> None:
    # sgd declares no defaults of its own; momentum is one of torch.optim.SGD's keywords
    spec = build_grid(None, ["optimizer.sgd.momentum=0.5", "initializer.orthogonal.gain=2.0"],
                      domain=catalogue.domain, optimizer="sgd", initializer="orthogonal")
    trials, _ = expand_grid(spec, catalogue)
    assert trials[0].params["optimizer"] == {"momentum": 0.5}
    assert trials[0].params["initializer"] == {"gain": 2.0}


def test_takes_keyword_reads_only_named_parameters() -> None:
    def build(spec: Any, outputs: int, activation: Any, *, norm: Any = None) -> None: ...

    def open_ended(spec: Any, outputs: int, activation: Any, **kwargs: Any) -> None: ...

    assert takes_keyword(build, "norm")
    assert not takes_keyword(build, "initializer")
    assert not takes_keyword(open_ended, "norm")  # a **kwargs catch-all is not a declared parameter
    assert not takes_keyword(max, "norm")  # no signature to read


def test_grid_file_with_flags_overriding(tmp_path: Path, catalogue: Any) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(
        '[grid]\ntask = ["digits"]\narch = ["fnn", "cnn"]\nactivation = "relu"\noptimizer = ["sgd", "adam"]\n'
        'lr = [0.1, "default"]\nseeds = 2\nepochs = 3\n\n'
        'exclude = [{arch = "cnn", optimizer = "sgd"}]\n\n[arch.fnn]\nhidden = [128, 128]\n'
    )
    spec = build_grid(load_grid_file(path), seeds=1)
    assert spec.seeds == 1 and spec["epochs"] == [3]
    assert spec["batch_size"] == default_grid(build_domain())["batch_size"]
    trials, skipped = expand_grid(spec, catalogue)
    assert len(trials) == 2 * 2 * 2 - 2
    assert all(t.params["arch"]["hidden"] == [128, 128] for t in trials if t.arch == "fnn")
    assert len(skipped) == 2


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[grid]\ntask = ["iris"]\narch = fnn\n')
    with pytest.raises(GridError, match=r"bad.toml is not valid TOML: .*line 3"):
        load_grid_file(path)


@pytest.mark.parametrize(("text", "message"), [
    ('arch = ["fnn"]\n', "put `arch = \\[...\\]` in the \\[grid\\] table"),
    ('[grid]\ntasks = ["iris"]\n', "unknown axis 'tasks'"),
    ('task = ["iris"]\n', "unknown top-level key 'task'.*in a \\[grid\\] table"),
    ('[grid]\nexclude = "cnn"\n', "exclude must be a list of tables"),
])
def test_invalid_grid_file_structure(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(GridError, match=message):
        load_grid_file(path)


def test_missing_grid_file(tmp_path: Path) -> None:
    with pytest.raises(GridError, match="cannot read grid file"):
        load_grid_file(tmp_path / "absent.toml")


def test_a_non_utf8_grid_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b"\xff\xfe[grid]\n")
    with pytest.raises(GridError, match="latin.toml is not UTF-8 text"):
        load_grid_file(path)


def test_set_assignment_parsing() -> None:
    assert parse_assignment("arch.fnn.hidden=[128, 128]") == ("arch", "fnn", "hidden", [128, 128])
    assert parse_assignment("optimizer.sgd.momentum=0.5") == ("optimizer", "sgd", "momentum", 0.5)
    assert parse_assignment("arch.fnn.mode=fast") == ("arch", "fnn", "mode", "fast")
    with pytest.raises(GridError, match="KIND.NAME.PARAM=VALUE"):
        parse_assignment("hidden=3")
    with pytest.raises(GridError, match="'\\[128,' is not a value"):
        parse_assignment("arch.fnn.hidden=[128,")


def test_an_exclude_rule_that_matches_nothing_is_named(catalogue: Any) -> None:
    from nnbench.planning.grid import GridWarning

    spec = grid(optimizer="sgd,adam")
    spec.exclude = [{"arch": "fnnn"}, {"optimizer": "sgd"}]
    with pytest.warns(GridWarning, match="exclude rule {'arch': 'fnnn'} matches no combination"):
        trials, _ = expand_grid(spec, catalogue)
    assert {t.optimizer for t in trials} == {"adam"}
