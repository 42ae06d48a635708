"""A race as tables: which configurations a race pruned, when and on what evidence, and what it spent.

The verdicts of a raced run are drawn only over the configurations that finished (:func:`finished_configurations`);
the pruned ones are listed apart (:func:`pruned_configurations`), each as "worse than X at epoch e, seeds s".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from nnbench.storage.store import RESULT_COLUMNS

_NOT_CONFIGURATION = frozenset({"trial_id", "run_id", "seed", "protocol", *RESULT_COLUMNS})


def configuration_ids(trials: pd.DataFrame) -> pd.Series:
    """A label per row that is the same for every seed of a configuration (the trial without its seed)."""
    columns = [c for c in trials.columns if c not in _NOT_CONFIGURATION]
    if trials.empty or not columns:
        return pd.Series("", index=trials.index, dtype=object)
    return trials[columns].map(str).agg("\x1f".join, axis=1)


def raced(trials: pd.DataFrame) -> bool:
    """Whether a race pruned any of ``trials``."""
    return "status" in trials.columns and bool(trials["status"].eq("pruned").any())


def finished_configurations(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` without every trial of a configuration a race pruned: what the verdicts compare."""
    if not raced(trials):
        return trials
    ids = configuration_ids(trials)
    pruned = set(ids[trials["status"].eq("pruned")])
    return trials[~ids.isin(pruned)]


def pruned_configurations(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration a race pruned, in the order it left: its task, a row of its trials (to name it),
    the rung, epoch and seeds of the decision, the configuration it was shown worse than, the mean difference,
    the ROPE, the Holm-adjusted p-value and alpha, how many of its trials were not trained, and all that in words
    (``text``: see :func:`describe`)."""
    columns = ["task", "configuration", "rung", "epoch", "seeds", "against", "metric", "mean_difference", "rope",
               "p_value", "alpha", "not_trained", "text"]
    if not raced(trials):
        return pd.DataFrame(columns=columns)
    pruned = trials[trials["status"].eq("pruned")].assign(configuration=configuration_ids(trials))
    rows = []
    for _, group in pruned.groupby("configuration", sort=False):
        first = group.iloc[0]
        evidence = json.loads(first["race"]) if isinstance(first["race"], str) else {}
        row = {**first.to_dict(), **{k: evidence.get(k) for k in columns[1:-2]}, "not_trained": len(group)}
        rows.append({**row, "text": describe(row)})
    frame = pd.DataFrame(rows)
    return frame.sort_values(["task", "rung"], kind="stable").reset_index(drop=True)


def compute_spent(trials: pd.DataFrame) -> dict[str, float]:
    """Epochs planned (what the exhaustive grid trains: every trial's epochs), epochs trained (a pruned trial trains
    none), their ratio, and the training time of the stored trials (seconds)."""
    planned = float(trials["epochs"].sum()) if "epochs" in trials.columns else 0.0
    trained = float(trials["epochs_run"].fillna(0).sum()) if "epochs_run" in trials.columns else 0.0
    return {"planned_epochs": planned, "trained_epochs": trained, "share": trained / planned if planned else 0.0,
            "train_time": float(trials["train_time"].fillna(0).sum()) if "train_time" in trials.columns else 0.0}


def describe(row: Mapping[str, Any]) -> str:
    """``fnn/tanh/adam@0.01: worse than fnn/relu/adam@0.01 at epoch 3, seeds 3 (+0.044 val_accuracy beyond
    ±0.005, Holm-adjusted p = 0.015 < 0.05)``."""
    return (f"{row['configuration']}: worse than {row['against']} at epoch {row['epoch']}, seeds {row['seeds']} "
            f"({float(row['mean_difference']):+.3g} {row['metric']} beyond ±{float(row['rope']):.2g}, "
            f"Holm-adjusted p = {below(float(row['p_value']), float(row['alpha']))} < {float(row['alpha']):.2g})")


def below(p: float, alpha: float) -> str:
    """``p`` with the fewest significant digits (two at least) that still read as less than ``alpha``: a p-value of
    0.02496 at alpha 0.025 reads ``0.02496``, not ``0.025``."""
    for digits in range(2, 18):  # 17 significant digits tell any two floats apart
        text = f"{p:.{digits}g}"
        if float(text) < alpha:
            return text
    return f"{p:.2g}"  # p is not below alpha
