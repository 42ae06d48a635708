"""Tidy frames and aggregates of stored results (pure pandas: no plotting, no torch)."""

from __future__ import annotations

import pandas as pd

CONFIG_AXES = ["arch", "activation", "loss", "optimizer", "lr", "batch_size", "epochs", "device"]


def leaderboard(trials: pd.DataFrame) -> pd.DataFrame:
    """Configurations ranked per task by the task's metric on held-out data (mean and std over seeds).

    Only ``ok`` trials count towards the metric; ``seeds`` counts them, ``failed`` counts the rest.
    """
    columns = ["task", "rank", *CONFIG_AXES, "metric_name", "mean", "std", "seeds", "failed",
               "train_time", "n_params"]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    frame = trials.assign(ok=trials["status"].eq("ok"))
    frame["ok_metric"] = frame["metric"].where(frame["ok"])
    grouped = frame.groupby(["task", *CONFIG_AXES], dropna=False, sort=False)
    board = grouped.agg(
        metric_name=("metric_name", "first"),
        mean=("ok_metric", "mean"),
        std=("ok_metric", "std"),
        seeds=("ok", "sum"),
        trials=("ok", "size"),
        train_time=("train_time", "mean"),
        n_params=("n_params", "first"),
    ).reset_index()
    board["failed"] = board.pop("trials") - board["seeds"]
    ranked = []
    for _, part in board.groupby("task", sort=False):
        higher_is_better = part["metric_name"].iloc[0] != "rmse"
        part = part.sort_values("mean", ascending=not higher_is_better, na_position="last")
        part.insert(1, "rank", range(1, len(part) + 1))
        ranked.append(part)
    return pd.concat(ranked, ignore_index=True)[columns]
