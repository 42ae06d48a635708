"""A trial's identity and its plain-data forms: ids, canonical configs, labels, equality, pickling."""

from __future__ import annotations

import dataclasses
import pickle

from nnbench.contract.trial import TRIAL_AXES, TRIAL_FORMAT, Trial, TrialResult

BASE = Trial("moons", "fnn", "relu", "cross_entropy", "adam", 1e-3, 32, 5, 0, "cpu", {"arch": {"hidden": [8]}})


def test_the_canonical_form_holds_every_axis_and_the_parameters() -> None:
    config = BASE.config()
    assert config == {"task": "moons", "arch": "fnn", "activation": "relu", "loss": "cross_entropy",
                      "optimizer": "adam", "lr": 1e-3, "batch_size": 32, "epochs": 5, "seed": 0, "device": "cpu",
                      "params": {"arch": {"hidden": [8]}}, "schedule": "constant", "clip": None,
                      "patience": None}
    clipped = dataclasses.replace(BASE, clip=0.5, patience=2, components={"norm": "batch"}).config()
    assert (clipped["clip"], clipped["patience"], clipped["norm"]) == (0.5, 2, "batch")
    assert [ax.name for ax in TRIAL_AXES][:4] == ["task", "arch", "activation", "loss"]


def test_ids_are_stable_short_hashes_of_the_canonical_form() -> None:
    import hashlib
    import json

    canonical = json.dumps({"format": TRIAL_FORMAT, **BASE.config()}, sort_keys=True, default=str)
    assert BASE.trial_id == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    params_order = Trial("moons", "fnn", "relu", "cross_entropy", "adam", 1e-3, 32, 5, 0, "cpu",
                         {"optimizer": {}, "arch": {"hidden": [8]}})
    assert params_order.trial_id != BASE.trial_id  # an empty optimizer table is still part of the form
    assert Trial.from_config(params_order.config()).trial_id == params_order.trial_id


def test_equality_and_hashing_follow_the_id() -> None:
    twin = Trial.from_config(BASE.config())
    assert twin == BASE and hash(twin) == hash(BASE) and twin is not BASE
    assert dataclasses.replace(BASE, seed=1) != BASE
    assert BASE.config() != BASE  # a trial equals only trials
    assert len({BASE, twin, dataclasses.replace(BASE, seed=1)}) == 2


def test_a_pickled_trial_recomputes_its_id_and_keeps_every_field() -> None:
    _ = BASE.trial_id  # cached on the instance
    state = BASE.__getstate__()
    assert "trial_id" not in state and state["task"] == "moons"
    copy = pickle.loads(pickle.dumps(BASE))
    assert copy.config() == BASE.config() and copy.trial_id == BASE.trial_id


def test_components_round_trip_and_read_as_axes() -> None:
    trial = dataclasses.replace(BASE, components={"initializer": "orthogonal"})
    back = Trial.from_config(trial.config())
    assert back.components == {"initializer": "orthogonal"} and back.trial_id == trial.trial_id
    assert back.value("initializer") == "orthogonal" and back.value("norm") is None
    assert back.value("lr") == 1e-3 and back.value("task") == "moons"


def test_labels_name_what_differs_from_the_defaults() -> None:
    assert BASE.label() == "fnn/relu/cross_entropy/adam@0.001"
    fancy = dataclasses.replace(BASE, schedule="cosine", clip=1.0,
                                components={"norm": "batch", "initializer": "xavier"})
    assert fancy.label() == "fnn/relu/cross_entropy/adam@0.001+cosine clip 1 initializer=xavier norm=batch"


def test_a_result_summary_is_flat_plain_data() -> None:
    result = TrialResult(BASE, "ok", "accuracy", 0.9, n_params=10)
    summary = result.summary()
    assert "trial" not in summary and "curve" not in summary
    assert summary["status"] == "ok" and summary["metric"] == 0.9 and summary["n_params"] == 10


def test_a_config_without_parameters_reads_as_none() -> None:
    config = {k: v for k, v in BASE.config().items() if k != "params"}
    assert Trial.from_config(config).params == {}
