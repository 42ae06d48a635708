"""nnbench runs written to MLflow with MLflow's own client.

Layout, in the experiment ``MLFLOW_EXPERIMENT_NAME`` (or ``MLFLOW_EXPERIMENT_ID``; else ``nnbench``):

- one MLflow run per nnbench run (tags ``nnbench.kind=run``, ``nnbench.run_id``, its environment);
- nested in it, one run per trial: every axis and hyper-parameter as a parameter, the final numbers as metrics,
  each per-epoch number as a metric ``epoch/NAME`` with the epoch as its step, status, code identity and
  environment as tags (``nnbench.trial_id`` finds it again);
- nested in it too, one run per seed group (the trials of one configuration over its seeds): the axes but the
  seed as parameters and, for every number, ``NAME/mean``, ``NAME/std``, ``NAME/ci_low``, ``NAME/ci_high``
  and ``NAME/n`` (per epoch as ``epoch/NAME/mean`` ...), so MLflow's tables compare configurations.

Each trial and group run carries the fingerprint of its numbers: writing the same run again finds its runs by
tag and skips those whose numbers are unchanged, and replaces those whose numbers changed, so nothing is ever
duplicated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag, ViewType
from mlflow.environment_variables import MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME

from nnbench.tracking.live import environment_tags
from nnbench.tracking.records import TrackedRun, TrackedTrial
from nnbench.tracking.seed_groups import Interval, SeedGroup

EXPERIMENT = "nnbench"
"""The experiment runs go to when MLflow's own settings name none."""
KIND, RUN_ID, TRIAL_ID, GROUP, FINGERPRINT = "nnbench.kind", "nnbench.run_id", "nnbench.trial_id", \
    "nnbench.group", "nnbench.fingerprint"
PARENT = "mlflow.parentRunId"
STATUSES = {"finished": "FINISHED", "stopped": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
"""An nnbench run's status -> its MLflow run's (a run still running stays ``RUNNING``)."""
# MLflow's limits per batch, and on values (the lowest of the releases this plugin supports)
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_PARAM_TEXT, MAX_TAG_TEXT = 1000, 100, 100, 500, 5000


class MlflowWriter:
    """Writes tracked runs to the tracking store MLflow's settings name (``MLFLOW_TRACKING_URI``, else its
    default) or to ``tracking_uri``."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        # MLflow announces at INFO each table it creates in a new SQLite store: not a line for a run's output
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri)
        self.experiment_id, self.experiment_name = self._experiment()

    def _experiment(self) -> tuple[str, str]:
        given = MLFLOW_EXPERIMENT_ID.get()
        if given:
            experiment = self.client.get_experiment(given)
            return str(experiment.experiment_id), str(experiment.name)
        name = MLFLOW_EXPERIMENT_NAME.get() or EXPERIMENT
        found = self.client.get_experiment_by_name(name)
        return (str(found.experiment_id) if found is not None else str(self.client.create_experiment(name))), name

    def export(self, runs: Sequence[TrackedRun]) -> str:
        """Write ``runs`` (their parents, trials and seed groups) and say what was written."""
        written = kept = 0
        for run in runs:
            existing = self.existing(run.run_id)
            parent = self.parent(run.run_id, run.status, run.environment, run.grid, existing)
            for trial in run.trials:
                done = self.trial(parent, run.run_id, trial, existing)
                written, kept = written + done, kept + (not done)
            for group in run.groups:
                done = self.group(parent, run.run_id, group, existing)
                written, kept = written + done, kept + (not done)
            self.end(parent, run.status)
        trials, groups = sum(len(r.trials) for r in runs), sum(len(r.groups) for r in runs)
        return (f"exported {len(runs)} run{'s' * (len(runs) != 1)} ({trials} trials, {groups} seed groups) to "
                f"MLflow at {self.client.tracking_uri}, experiment {self.experiment_name!r}: {written} MLflow runs "
                f"written, {kept} already there with the same numbers")

    def existing(self, run_id: str) -> dict[tuple[str, str], Run]:
        """The MLflow runs already written for the nnbench run ``run_id``, by (kind, trial id or group key)."""
        found: dict[tuple[str, str], Run] = {}
        token = None
        query = f"tags.`{RUN_ID}` = '{run_id.replace(chr(39), '')}'"
        while True:
            page = self.client.search_runs([self.experiment_id], query, ViewType.ACTIVE_ONLY, 1000, page_token=token)
            for run in page:
                tags = run.data.tags
                kind = tags.get(KIND, "")
                key = tags.get(TRIAL_ID) if kind == "trial" else tags.get(GROUP) if kind == "seed-group" else run_id
                found.setdefault((kind, str(key)), run)
            token = page.token
            if not token:
                return found

    def parent(self, run_id: str, status: str, environment: Mapping[str, Any], grid: Mapping[str, Any],
               existing: Mapping[tuple[str, str], Run]) -> str:
        """The MLflow run of the nnbench run ``run_id`` (made when absent), its tags brought up to date."""
        held = existing.get(("run", run_id))
        tags = {KIND: "run", RUN_ID: run_id, "nnbench.status": status,
                **{f"nnbench.env.{k}": v for k, v in environment_tags(environment).items()}}
        if grid:
            tags["nnbench.grid"] = json.dumps(grid, sort_keys=True, default=str)
        if held is None:
            parent = self.client.create_run(self.experiment_id, run_name=run_id, tags={KIND: "run", RUN_ID: run_id})
            parent_id = str(parent.info.run_id)
        else:
            parent_id = str(held.info.run_id)
        self._batch(parent_id, [], {}, tags)
        return parent_id

    def end(self, parent_id: str, status: str) -> None:
        if status in STATUSES:
            self.client.set_terminated(parent_id, STATUSES[status])

    def trial(self, parent_id: str, run_id: str, trial: TrackedTrial, existing: Mapping[tuple[str, str], Run]) -> bool:
        """Write one trial as a run nested in ``parent_id``; ``False`` when it was there with the same numbers."""
        if not self._replace(existing.get(("trial", trial.trial_id)), trial.fingerprint):
            return False
        tags = {KIND: "trial", RUN_ID: run_id, TRIAL_ID: trial.trial_id, FINGERPRINT: trial.fingerprint,
                PARENT: parent_id, "nnbench.status": trial.status, "nnbench.protocol": trial.protocol,
                "nnbench.metric_name": trial.metric_name, "nnbench.trained_in": trial.trained_in,
                **{f"nnbench.code.{axis}": code for axis, code in trial.code.items()},
                **{f"nnbench.env.{k}": v for k, v in environment_tags(trial.environment).items()}}
        if trial.group is not None:
            tags[GROUP] = trial.group
        if trial.error:
            tags["nnbench.error"] = trial.error
        params = {**trial.axes, **trial.params}
        metrics = [(name, value, 0) for name, value in trial.metrics.items()]
        metrics += [(f"epoch/{name}", value, int(epoch["epoch"])) for epoch in trial.curve
                    for name, value in epoch.items() if name != "epoch"]
        run = self.client.create_run(self.experiment_id, run_name=f"{trial.task} {trial.label} seed {trial.seed}",
                                     tags={KIND: "trial", RUN_ID: run_id, PARENT: parent_id})
        self._batch(str(run.info.run_id), metrics, params, tags)
        self.client.set_terminated(run.info.run_id, "FINISHED" if trial.status in ("ok", "diverged") else "FAILED")
        return True

    def group(self, parent_id: str, run_id: str, group: SeedGroup, existing: Mapping[tuple[str, str], Run]) -> bool:
        """Write one seed group as a run nested in ``parent_id``; ``False`` when it was there unchanged."""
        if not self._replace(existing.get(("seed-group", group.key)), group.fingerprint):
            return False
        tags = {KIND: "seed-group", RUN_ID: run_id, GROUP: group.key, FINGERPRINT: group.fingerprint, PARENT: parent_id,
                "nnbench.metric_name": group.metric_name, "nnbench.members": ",".join(group.members),
                "nnbench.seeds": ",".join(map(str, group.seeds)),
                "nnbench.statuses": ", ".join(f"{k}: {v}" for k, v in sorted(group.statuses.items())),
                "nnbench.interval": "95% interval of the mean over the seeds that finished ok"}
        params = {**group.axes, **group.params, "seeds": len(group.seeds)}
        metrics = [(f"{name}/{part}", value, 0) for name, interval in group.metrics.items()
                   for part, value in _parts(interval)]
        metrics += [(f"epoch/{name}/{part}", value, epoch) for name, points in group.curve.items()
                    for epoch, interval in points for part, value in _parts(interval)]
        run = self.client.create_run(self.experiment_id, run_name=f"{group.task} {group.label} "
                                     f"({len(group.seeds)} seeds)", tags={KIND: "seed-group", RUN_ID: run_id,
                                                                          PARENT: parent_id})
        self._batch(str(run.info.run_id), metrics, params, tags)
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return True

    def _replace(self, held: Run | None, fingerprint: str) -> bool:
        """Whether to write a trial or group: absent, or there with other numbers (then the old run goes)."""
        if held is None:
            return True
        if held.data.tags.get(FINGERPRINT) == fingerprint and held.info.status != "RUNNING":
            return False
        self.client.delete_run(held.info.run_id)
        return True

    def _batch(self, mlflow_run: str, metrics: Sequence[tuple[str, float, int]], params: Mapping[str, Any],
               tags: Mapping[str, Any]) -> None:
        stamp = int(time.time() * 1000)
        metric_list = [Metric(name, float(value), stamp, step) for name, value, step in metrics]
        param_list = [Param(name, _text(value, MAX_PARAM_TEXT)) for name, value in params.items()]
        tag_list = [RunTag(name, _text(value, MAX_TAG_TEXT)) for name, value in tags.items()]
        for chunk in _chunks(metric_list, MAX_METRICS):
            self.client.log_batch(mlflow_run, metrics=chunk)
        for chunk in _chunks(param_list, MAX_PARAMS):
            self.client.log_batch(mlflow_run, params=chunk)
        for chunk in _chunks(tag_list, MAX_TAGS):
            self.client.log_batch(mlflow_run, tags=chunk)


def _parts(interval: Interval) -> list[tuple[str, float]]:
    parts = {"mean": interval.mean, "std": interval.std, "ci_low": interval.low, "ci_high": interval.high,
             "n": float(interval.n)}
    return [(part, value) for part, value in parts.items() if value is not None]


def _text(value: Any, limit: int) -> str:
    text = "none" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
