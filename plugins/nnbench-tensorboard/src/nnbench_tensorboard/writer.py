"""nnbench runs written as TensorBoard event files, with TensorBoard's own writer and protocol buffers (no
TensorFlow, no torch).

Layout of a log folder (``tensorboard --logdir FOLDER``)::

    FOLDER/
      events.out.tfevents.*            the HParams experiment: the grid's axes and the metrics, over every run
      nnbench-tensorboard.json         what was written, by session folder, with the fingerprint of its numbers
      RUN/TASK/CONFIGURATION/seed-N/   one trial: epoch/NAME per epoch, its final NAME, its HParams session
      RUN/TASK/CONFIGURATION/seeds/    its seed group: NAME/mean, NAME/ci_low, NAME/ci_high, NAME/n (and per
                                       epoch, epoch/NAME/mean ...), its HParams session
      RUN/TASK/tuning/CONFIGURATION/   the trials of a tuning search (points of a search, in no seed group)

Every session's HParams carry the trial's axes (the seed group's: all but the seed), ``kind`` (``trial`` or
``seed group``) and ``run``, so the HParams table filters configurations from trials. Writing again skips
sessions whose numbers are unchanged and rewrites the others, so exporting twice duplicates nothing.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from nnbench.contract.trial import TRIAL_AXES
from nnbench.tracking.records import TrackedRun, TrackedTrial
from nnbench.tracking.seed_groups import Interval, SeedGroup

MANIFEST = "nnbench-tensorboard.json"
EVENTS = "events.out.tfevents.*"
NUMERIC_AXES = frozenset(ax.name for ax in TRIAL_AXES if ax.value_type in (int, float) and not ax.nullable)
"""Axes shown as numbers in the HParams table (the others, and every hyper-parameter, as text)."""
FIRST_METRICS = ("metric", "metric/mean", "metric/ci_low", "metric/ci_high", "metric/n", "val_metric",
                 "val_metric/mean")


class EventsWriter:
    """Writes tracked runs into the log folder ``logdir``, remembering what it wrote there."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)
        self.sessions: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            found = json.loads((self.logdir / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        sessions = found.get("sessions") if isinstance(found, dict) else None
        return sessions if isinstance(sessions, dict) else {}

    def export(self, runs: Sequence[TrackedRun]) -> str:
        """Write ``runs``, each in ``logdir/RUN``, and the experiment; say what was written."""
        written = kept = 0
        for run in runs:
            folder = self.logdir / run.run_id
            for trial in run.trials:
                done = self.trial(folder, run.run_id, trial)
                written, kept = written + done, kept + (not done)
            for group in run.groups:
                done = self.group(folder, run.run_id, group)
                written, kept = written + done, kept + (not done)
        self.experiment()
        self.save()
        trials, groups = sum(len(r.trials) for r in runs), sum(len(r.groups) for r in runs)
        return (f"exported {len(runs)} run{'s' * (len(runs) != 1)} ({trials} trials, {groups} seed groups) to "
                f"TensorBoard event files in {self.logdir}: {written} sessions written, {kept} already there with "
                f"the same numbers; view them with `tensorboard --logdir {self.logdir}`")

    def trial(self, folder: Path, run_id: str, trial: TrackedTrial) -> bool:
        """Write one trial's session under the run folder ``folder``; ``False`` when it was there unchanged."""
        if trial.group is None:
            path = folder / _slug(trial.task) / "tuning" / f"{_slug(trial.label)}-{trial.trial_id[:8]}"
        else:
            path = folder / _slug(trial.task) / f"{_slug(trial.label)}-{trial.group[:6]}" / f"seed-{trial.seed}"
        hparams = {**_hparams(trial.axes, trial.params), "kind": "trial", "run": run_id, "protocol": trial.protocol}
        last = len(trial.curve)
        scalars = [(name, value, last) for name, value in trial.metrics.items()]
        scalars += [(f"epoch/{name}", value, int(epoch["epoch"])) for epoch in trial.curve
                    for name, value in epoch.items() if name != "epoch"]
        return self._session(path, trial.trial_id, trial.fingerprint, hparams, scalars,
                             trial.status in ("ok", "diverged"))

    def group(self, folder: Path, run_id: str, group: SeedGroup) -> bool:
        """Write one seed group's session under the run folder ``folder``; ``False`` when it was there unchanged."""
        path = folder / _slug(group.task) / f"{_slug(group.label)}-{group.key[:6]}" / "seeds"
        hparams = {**_hparams(group.axes, group.params), "kind": "seed group", "run": run_id,
                   "seeds": len(group.seeds)}
        scalars = [(f"{name}/{part}", value, 0) for name, interval in group.metrics.items()
                   for part, value in _parts(interval)]
        scalars += [(f"epoch/{name}/{part}", value, epoch) for name, points in group.curve.items()
                    for epoch, interval in points for part, value in _parts(interval)]
        return self._session(path, f"seeds-{group.key}", group.fingerprint, hparams, scalars, True)

    def _session(self, path: Path, name: str, fingerprint: str, hparams: dict[str, Any],
                 scalars: list[tuple[str, float, int]], success: bool) -> bool:
        key = path.relative_to(self.logdir).as_posix()
        held = self.sessions.get(key)
        if held is not None and held.get("fingerprint") == fingerprint and any(path.glob(EVENTS)):
            return False
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob(EVENTS):  # numbers changed (a trial trained again): the session starts afresh
            old.unlink()
        now = time.time()
        events = [event_pb2.Event(wall_time=now, step=0, summary=hp.hparams_pb(hparams, trial_id=name,
                                                                                start_time_secs=now))]
        events += [event_pb2.Event(wall_time=now, step=step, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])) for tag, value, step in scalars]
        events.append(event_pb2.Event(wall_time=now, step=0, summary=_session_end(success, now)))
        _write(path, events)
        self.sessions[key] = {"fingerprint": fingerprint, "hparams": hparams,
                              "metrics": sorted({tag for tag, _, _ in scalars if not tag.startswith("epoch/")})}
        return True

    def experiment(self) -> None:
        """(Re)write the HParams experiment of the log folder: every hyper-parameter and metric of its sessions."""
        values: dict[str, set[Any]] = {}
        metrics: set[str] = set()
        for session in self.sessions.values():
            for name, value in session.get("hparams", {}).items():
                values.setdefault(name, set()).add(value)
            metrics.update(session.get("metrics", []))
        hparams = [hp.HParam(name, _domain(found)) for name, found in sorted(values.items(), key=_axis_order)]
        ordered = [m for m in FIRST_METRICS if m in metrics] + sorted(metrics - set(FIRST_METRICS))
        summary = hp.hparams_config_pb(hparams, [hp.Metric(tag) for tag in ordered])
        self.logdir.mkdir(parents=True, exist_ok=True)
        for old in self.logdir.glob(EVENTS):
            old.unlink()
        _write(self.logdir, [event_pb2.Event(wall_time=time.time(), step=0, summary=summary)])

    def save(self) -> None:
        """Record what was written (replacing the record only once it is whole)."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        partial = self.logdir / f"{MANIFEST}.partial"
        partial.write_text(json.dumps({"format": 1, "sessions": self.sessions}, indent=1, sort_keys=True))
        os.replace(partial, self.logdir / MANIFEST)


def _write(folder: Path, events: list[event_pb2.Event]) -> None:
    writer = EventFileWriter(str(folder))
    try:
        for event in events:
            writer.add_event(event)
    finally:
        writer.close()


def _session_end(success: bool, when: float) -> summary_pb2.Summary:
    status = api_pb2.STATUS_SUCCESS if success else api_pb2.STATUS_FAILURE
    data = plugin_data_pb2.HParamsPluginData(session_end_info=plugin_data_pb2.SessionEndInfo(status=status,
                                                                                            end_time_secs=when))
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
                      tensor=metadata.NULL_TENSOR)
    return summary


def _hparams(axes: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """HParams values: the numeric axes as numbers, everything else as text (``none`` for no value), so each
    hyper-parameter has one type across sessions."""
    found: dict[str, Any] = {}
    for name, value in {**axes, **params}.items():
        if name in NUMERIC_AXES and isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = float(value) if name == "lr" else value
        else:
            found[name] = "none" if value is None else value if isinstance(value, str) else json.dumps(value)
    return found


def _domain(values: set[Any]) -> hp.Domain | None:
    if all(isinstance(v, str) for v in values):
        return hp.Discrete(sorted(values))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return hp.Discrete(sorted(float(v) for v in values)) if len(values) <= 100 else None
    return None


def _axis_order(item: tuple[str, Any]) -> tuple[int, str]:
    order = [ax.name for ax in TRIAL_AXES]
    name = item[0]
    return (order.index(name) if name in order else len(order) + (name not in ("kind", "run", "seeds")), name)


def _parts(interval: Interval) -> list[tuple[str, float]]:
    parts = {"mean": interval.mean, "std": interval.std, "ci_low": interval.low, "ci_high": interval.high,
             "n": float(interval.n)}
    return [(part, value) for part, value in parts.items() if value is not None]


def _slug(text: str) -> str:
    """A folder name for ``text`` (``fnn/relu/adam@0.001`` -> ``fnn_relu_adam@0.001``)."""
    return re.sub(r"[^A-Za-z0-9@.+=_-]+", "_", text).strip("_.") or "_"
