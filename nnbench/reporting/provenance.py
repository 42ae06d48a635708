"""Where the reported results come from, when that is more than one machine: a callout that warns before any
timing is read across machines, and lists the trials a merged store held with other numbers.

Timings (time per epoch, throughput, peak memory) depend on the machine; results merged from several
(``nnbench merge``) compare on metrics, but on speed and memory only within one machine. A trial merged with
other numbers than this store's is kept from both sides (``trial_conflicts``); the report shows this store's
numbers and names the other copies here.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from nnbench.contract.axes import short_label
from nnbench.contract.section import Block, Finding, ReportSection
from nnbench.contract.trial import TRIAL_AXES
from nnbench.storage.provenance import Hardware, hardware

TITLE = "Results from several machines"
SHOWN = 10  # copies named one by one


def provenance(trials: pd.DataFrame, runs: pd.DataFrame) -> list[ReportSection]:
    """The callout, or nothing where every timed trial ran on one machine and no trial has another copy."""
    machines = {str(run.run_id): hardware(run.environment) for run in runs.itertuples()}
    blocks: list[Block] = [*_hardware(trials, machines), *_conflicts(trials, runs, machines)]
    if not blocks:
        return []
    return [ReportSection(TITLE, blocks=blocks, anchor="machines", style="callout")]


def _hardware(trials: pd.DataFrame, machines: dict[str, Hardware]) -> list[Block]:
    if trials.empty or "train_time" not in trials:
        return []
    timed = trials[trials["train_time"].fillna(0).gt(0)]
    counts: dict[Hardware, int] = {}
    for run_id in timed["run_id"]:
        if str(run_id) in machines:
            machine = machines[str(run_id)]
            counts[machine] = counts.get(machine, 0) + 1
    if len(counts) < 2:
        return []
    listed = "; ".join(f"{machine.describe()}: {count} trials" for machine, count in counts.items())
    return [Finding("warning", f"these trials were trained on {len(counts)} machines ({listed}). Time per epoch, "
                               "throughput and peak memory compare only within one machine: the speed and device "
                               "tables below mix them; compare metrics freely, timings per machine (report the "
                               "runs of one machine on their own)")]


def _conflicts(trials: pd.DataFrame, runs: pd.DataFrame, machines: dict[str, Hardware]) -> list[Block]:
    if "conflicts" not in runs or trials.empty:
        return []
    reported = {str(t): row for t, row in zip(trials["trial_id"], trials.to_dict("records"), strict=True)}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for text in runs["conflicts"]:
        for item in json.loads(text) if isinstance(text, str) else []:
            if str(item.get("trial_id")) in reported:
                found.setdefault((str(item["trial_id"]), str(item.get("run_id"))), item)
    if not found:
        return []
    trial_ids = {trial_id for trial_id, _ in found}
    blocks: list[Block] = [Finding("warning", f"{len(trial_ids)} of these trials were stored with other numbers in a "
                                              "store merged into this one (the same trial and seed, trained again "
                                              "elsewhere): both copies are kept, this report uses this store's, and "
                                              "the others are in the store's trial_conflicts table. Same trial, same "
                                              "numbers did not hold across machines here: a finding about "
                                              "reproducibility in itself")]
    for (trial_id, run_id), item in list(found.items())[:SHOWN]:
        row = reported[trial_id]
        where = machines[run_id].describe() if run_id in machines else f"run {run_id}"
        differences = item.get("differences") or {}
        shown = [f"{name} {kept:.6g} here, {other:.6g} there" if _numbers(kept, other) else f"{name} {kept} here, "
                 f"{other} there" for name, (kept, other) in ((n, v) for n, v in differences.items() if n != "epochs")]
        if "epochs" in differences:
            shown.append(f"the curve differs at {len(differences['epochs'])} epochs")
        blocks.append(Finding("note", f"trial {trial_id} ({row.get('task')} {short_label(row, TRIAL_AXES)} seed "
                                      f"{row.get('seed')}), other copy trained on {where}: {'; '.join(shown)}"))
    if len(found) > SHOWN:
        blocks.append(Finding("note", f"... and {len(found) - SHOWN} more copies: see the store's trial_conflicts "
                                      "table"))
    return blocks


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
