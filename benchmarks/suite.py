"""nnbench's speed suite: the trainer, seed stacks, whole-run overhead, memory and start-up, next to their targets.

    python benchmarks/suite.py                  # everything: a few minutes on 2 cores
    python benchmarks/suite.py --only trainer,seeds --repeats 3
    python benchmarks/suite.py --only trainer,seeds --device cuda   # the GPU check (16 and 256 seeds)

Sections (``--only``):

- ``trainer``: nnbench's ``train_trial`` against a tutorial-style loop (DataLoader, ``loss.item()``
  every step, default Adam) and against a best-practice hand-written loop (data on the device,
  index-sliced batches, fused Adam, one host read per epoch), on the same trials: FNN and CNN on
  digits, LSTM on digits read as rows. Every loop trains and scores the validation and test splits
  after each epoch, as the trainer does, and runs on one torch thread, as nnbench's executors do.
- ``seeds``: 16 seeds trained as one stacked ensemble against one by one (``train_item`` stacked and
  without ``vectorize``): the tutorial's 2-2-1 network on ``toy`` and the digits MLP; on a GPU
  (``--device cuda``) 16 and 256 seeds of the digits MLP.
- ``run``: the whole ``nnbench run`` of the default grid (a fresh store, a process of its own)
  against the sum of its trials' training time, split into the time inside and around the trials,
  with the imports no run can skip as a share of that training time; and peak memory (RSS of all
  its processes) with ``--workers 1`` and ``--workers 2``.
- ``help``: ``nnbench --help`` wall-clock time and whether it imports heavy modules.

Speeds are ratios of times taken in this one run, alternating the contenders and keeping each
one's fastest repetition, so a machine shared with other work disturbs both sides alike.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import Catalogue, collect_catalogue
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.training.ensemble import train_item
from nnbench.training.trainer import build_model, choose_view, synchronize, to_view, train_trial

HERE = Path(__file__).resolve().parent
SECTIONS = ("trainer", "seeds", "run", "help")
HEAVY_MODULES = ("torch", "seaborn", "matplotlib", "pandas", "scipy", "sklearn")


@dataclass
class Figure:
    """One measured figure and its target; ``ok`` is ``None`` when it could not be measured. A figure
    without a target breaks down the one above it."""

    name: str
    value: str
    target: str
    ok: bool | None
    note: str = ""

    def line(self) -> str:
        verdict = {True: "ok", False: "MISSED", None: "NOT MEASURED"}[self.ok] if self.target else ""
        target = f"target {self.target}" if self.target else ""
        note = f"  ({self.note})" if self.note else ""
        return f"  {self.name:<70} {self.value:>9}   {target:<16} {verdict}{note}"


def fastest(contenders: dict[str, Callable[[], Any]], repeats: int, device: str = "cpu") -> dict[str, float]:
    """Each contender's fastest of ``repeats`` timed calls, alternating them, after one warm-up call each."""
    for run in contenders.values():
        run()
    best = dict.fromkeys(contenders, math.inf)
    for _ in range(repeats):
        for name, run in contenders.items():
            synchronize(torch.device(device))
            start = time.perf_counter()
            run()
            synchronize(torch.device(device))
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def trials_of(catalogue: Catalogue, sets: list[str] | None = None, **axes: Any) -> list[Trial]:
    base = {"task": "digits", "arch": "fnn", "activation": "relu", "loss": "cross_entropy", "optimizer": "adam",
            "lr": "default", "seeds": 1, "epochs": 15, "batch_size": 64}
    trials, _ = expand_grid(build_grid(None, sets or [], **{**base, **axes}), catalogue)
    return trials


# -- trainer -----------------------------------------------------------------------------------------


def _splits(trial: Trial, catalogue: Catalogue) -> tuple[Any, ...]:
    task = catalogue.tasks.get(trial.task)
    view = choose_view(task, catalogue.architectures.get(trial.arch).modalities)
    data = task.load()
    return (task, view, *[to_view(x, task.modality, view) for x in (data.x_train, data.x_val, data.x_test)],
            data.y_train, data.y_val, data.y_test)


def tutorial_loop(trial: Trial, catalogue: Catalogue) -> None:
    """How tutorials train: a DataLoader over in-memory tensors, ``loss.item()`` each step, default Adam."""
    task, view, x_train, x_val, x_test, y_train, y_val, y_test = _splits(trial, catalogue)
    device = torch.device(trial.device)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=trial.batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(trial.seed))
    held_out = [DataLoader(TensorDataset(x, y), batch_size=trial.batch_size) for x, y in
                ((x_val, y_val), (x_test, y_test))]
    model = build_model(trial, catalogue, task, view).to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=trial.lr)
    for _ in range(trial.epochs):
        model.train()
        running = 0.0
        for xb, yb in train:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(xb)
        model.eval()
        with torch.no_grad():
            for loader in held_out:
                total, correct = 0.0, 0
                for xb, yb in loader:
                    xb, yb = xb.to(device), yb.to(device)
                    out = model(xb)
                    total += criterion(out, yb).item() * len(xb)
                    correct += (out.argmax(dim=1) == yb).sum().item()


def best_practice_loop(trial: Trial, catalogue: Catalogue) -> None:
    """A careful hand-written loop: what the trainer does, without the harness around it."""
    device = torch.device(trial.device)
    task, view, *tensors = _splits(trial, catalogue)
    x_train, x_val, x_test, y_train, y_val, y_test = [t.to(device) for t in tensors]
    model = build_model(trial, catalogue, task, view).to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=trial.lr, fused=True)
    shuffle = torch.Generator().manual_seed(trial.seed)
    n = len(x_train)
    for _ in range(trial.epochs):
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, trial.batch_size):
            idx = order[i : i + trial.batch_size]
            loss = criterion(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        float(total)
        model.eval()
        with torch.no_grad():
            for x, y in ((x_val, y_val), (x_test, y_test)):
                out = model(x)
                float(criterion(out, y)), float((out.argmax(dim=1) == y).float().mean())


def trainer_section(catalogue: Catalogue, repeats: int, device: str) -> list[Figure]:
    cases = {
        "FNN 64-128-128-10 on digits": trials_of(catalogue, ["arch.fnn.hidden=[128,128]"], device=device)[0],
        "CNN on digits": trials_of(catalogue, arch="cnn", device=device)[0],
        "LSTM on digits as rows": trials_of(catalogue, arch="lstm", device=device)[0],
    }
    figures = []
    for label, trial in cases.items():
        times = fastest({"tutorial": lambda t=trial: tutorial_loop(t, catalogue),
                         "best": lambda t=trial: best_practice_loop(t, catalogue),
                         # every loop here scores both held-out splits after each epoch, so nnbench does too
                         "nnbench": lambda t=trial: train_trial(t, catalogue, test_each_epoch=True)}, repeats, device)
        speedup = times["tutorial"] / times["nnbench"]
        slower = times["nnbench"] / times["best"] - 1
        samples = len(catalogue.tasks.get(trial.task).load().x_train) * trial.epochs
        timing = (f"{times['nnbench']:.2f}s vs {times['tutorial']:.2f}s tutorial, {times['best']:.2f}s best; "
                  f"{samples / times['nnbench']:,.0f} vs {samples / times['best']:,.0f} samples/s")
        figures += [Figure(f"trainer vs tutorial loop, {label}", f"{speedup:.2f}x", ">= 1.4x", speedup >= 1.4, timing),
                    Figure(f"trainer vs best-practice loop, {label}", f"{slower:+.1%}", "<= +5%", slower <= 0.05)]
    return figures


# -- seeds -------------------------------------------------------------------------------------------


def seeds_section(catalogue: Catalogue, repeats: int, device: str) -> list[Figure]:
    def mlp(seeds: int) -> list[Trial]:
        return trials_of(catalogue, ["arch.fnn.hidden=[128,128]"], seeds=seeds, epochs=5, device=device)

    if device == "cpu":
        cases = {
            "16 seeds, tutorial 2-2-1 net on toy": (
                trials_of(catalogue, ["arch.fnn.hidden=[2]"], task="toy", activation="tanh", loss="mse",
                          optimizer="sgd", seeds=16, epochs=20), 5.0, repeats),
            "16 seeds, digits MLP 64-128-128-10": (mlp(16), 1.5, repeats),
        }
    else:  # the GPU check: no targets were set, the figures are noted
        cases = {f"16 seeds, digits MLP on {device}": (mlp(16), 0.0, repeats),
                 f"256 seeds, digits MLP on {device}": (mlp(256), 0.0, 1)}
    figures = []
    for label, (trials, target, times_each) in cases.items():
        messages: list[str] = []

        def together(t: Any = trials, m: list[str] = messages) -> Any:
            results = train_item(t, catalogue, stacked=True)
            m += [r.training["reason"] for r in results[:1] if "reason" in (r.training or {})]
            return results

        times = fastest({"together": together,
                         "one by one": lambda t=trials: train_item(t, catalogue, stacked=False)},
                        times_each, device)
        speedup = times["one by one"] / times["together"]
        note = f"{times['together']:.2f}s vs {times['one by one']:.2f}s" + (f"; {messages[0]}" if messages else "")
        figures.append(Figure(f"seeds together vs one by one, {label}", f"{speedup:.1f}x",
                              f">= {target:g}x" if target else "", speedup >= target and not messages, note))
    return figures


# -- run ---------------------------------------------------------------------------------------------


def _memory_of_tree(process: Any) -> int:
    """The memory of ``process`` and its children: their PSS where the system gives it (Linux), RSS elsewhere.

    Workers forked from the server and the report's forked children share most of their pages with
    the process they came from; summing RSS would count each shared page once per process, while PSS
    divides it among the processes sharing it, so the sum is what the tree holds."""
    import psutil

    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += getattr(p.memory_full_info(), "pss", None) or p.memory_info().rss
    return total


def watched_run(command: list[str], folder: str) -> tuple[float, int | None, subprocess.CompletedProcess[str]]:
    """Run ``command`` in ``folder``; its wall-clock seconds and the peak memory of it and its children."""
    try:
        import psutil
    except ImportError:
        psutil = None
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder) as child:
        peak = 0
        if psutil is not None:
            watched = psutil.Process(child.pid)
            while child.poll() is None:
                try:
                    peak = max(peak, _memory_of_tree(watched))
                except psutil.Error:
                    break
                time.sleep(0.05)
        output = child.communicate()[0]
    wall = time.perf_counter() - start
    return wall, (peak if psutil is not None else None), subprocess.CompletedProcess(command, child.returncode,
                                                                                       output)


def _stored_train_time(store: Path) -> tuple[float, int]:
    import sqlite3

    with sqlite3.connect(store) as db:
        total, count = db.execute("SELECT SUM(train_time), COUNT(*) FROM trials").fetchone()
    return float(total or 0), int(count)


IMPORT_FLOOR = """
import importlib, sys, time
from nnbench.progress import SUMMARY_MODULES
assert "torch" not in sys.modules
start = time.perf_counter()
import torch
import torch._dynamo  # torch.optim.Optimizer.__init__ imports it on first use
for name in SUMMARY_MODULES:
    if not name.startswith("nnbench"):
        importlib.import_module(name)
print(time.perf_counter() - start)
"""


def import_floor() -> float | None:
    """Seconds a fresh process spends importing what every default-grid run needs: torch, the
    ``torch._dynamo`` that torch's optimizers import when the first one is made, and the libraries
    of the summary and the report. No change to nnbench's own code can take them off a run."""
    done = subprocess.run([sys.executable, "-c", IMPORT_FLOOR], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return float(done.stdout.strip().splitlines()[-1])


def run_section(catalogue: Catalogue, repeats: int, device: str) -> list[Figure]:
    figures = []
    help_text = subprocess.run([sys.executable, "-m", "nnbench", "run", "--help"], capture_output=True,
                               text=True).stdout
    has_workers = "--workers" in help_text
    with tempfile.TemporaryDirectory(prefix="nnbench-suite-") as folder:
        seconds_file, store = Path(folder, "trials.txt"), Path(folder, "one.db")
        wall, peak_one, done = watched_run([sys.executable, str(HERE / "timed_run.py"), str(seconds_file),
                                            "--store", str(store), "-q",
                                            *(["--workers", "1"] if has_workers else [])], folder)
        if done.returncode != 0:
            return [Figure("whole nnbench run of the default grid", "failed", "< +10%", None, done.stdout[-500:])]
        train_time, n_trials = _stored_train_time(store)
        trial_wall = float(seconds_file.read_text())
        overhead = wall / train_time - 1
        figures += [
            Figure(f"whole default-grid run vs its {n_trials} trials' train_time", f"{overhead:+.1%}", "< +10%",
                   overhead < 0.10, f"{wall:.1f}s vs {train_time:.1f}s"),
            Figure("  inside trials: per-epoch val+test scoring, model setup", f"{trial_wall / train_time - 1:+.1%}",
                   "", None, f"trials took {trial_wall:.1f}s in all"),
            Figure("  around trials: start-up, grid, store, leaderboard, report", f"{wall / trial_wall - 1:+.1%}",
                   "", None, f"{wall - trial_wall:.1f}s"),
        ]
        imports = import_floor()
        if imports is not None:
            figures.append(Figure("  imports no run can skip: torch, torch._dynamo, report libraries",
                                  f"{imports / train_time:+.1%}", "", None, f"{imports:.1f}s in a fresh process"))
        gb = 1024**3
        if peak_one is None:
            figures.append(Figure("peak memory, default grid", "n/a", "< 1.5 GB", None, "pip install psutil"))
            return figures
        figures.append(Figure("peak memory (PSS), default grid, --workers 1", f"{peak_one / gb:.2f} GB", "< 1.5 GB",
                              peak_one < 1.5 * gb))
        if not has_workers:
            figures.append(Figure("peak memory (PSS), default grid, --workers 2", "n/a", "< 1.5 GB", None,
                                  "this nnbench run has no --workers option yet"))
            return figures
        wall_two, peak_two, done = watched_run([sys.executable, "-m", "nnbench", "run", "--store",
                                                str(Path(folder, "two.db")), "-q", "--workers", "2"], folder)
        if done.returncode != 0:
            figures.append(Figure("peak memory (PSS), default grid, --workers 2", "failed", "< 1.5 GB", None,
                                  done.stdout[-500:]))
        else:
            peak = peak_two or 0
            figures.append(Figure("peak memory (PSS), default grid, --workers 2", f"{peak / gb:.2f} GB", "< 1.5 GB",
                                  peak < 1.5 * gb, f"run took {wall_two:.1f}s vs {wall:.1f}s with 1 worker"))
    return figures


# -- help --------------------------------------------------------------------------------------------


def help_section(catalogue: Catalogue, repeats: int, device: str) -> list[Figure]:
    script = Path(sys.executable).with_name("nnbench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "nnbench"]
    best = math.inf
    for _attempt in range(max(repeats, 5)):
        start = time.perf_counter()
        subprocess.run([*command, "--help"], capture_output=True, check=True)
        best = min(best, time.perf_counter() - start)
    trace = subprocess.run([sys.executable, "-X", "importtime", "-m", "nnbench", "--help"], capture_output=True,
                           text=True, check=True).stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in trace.splitlines() if "|" in line}
    heavy = sorted(imported & set(HEAVY_MODULES))
    return [Figure("nnbench --help", f"{best:.2f}s", "< 0.5s", best < 0.5, " ".join(command[-1:])),
            Figure("nnbench --help imports none of " + "/".join(HEAVY_MODULES), "none" if not heavy else
                   ",".join(heavy), "none", not heavy)]


# -- main --------------------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[Catalogue, int, str], list[Figure]]] = {
    "trainer": trainer_section, "seeds": seeds_section, "run": run_section, "help": help_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per contender (default 5)")
    parser.add_argument("--device", default="cpu", help="device of the trainer and seeds sections (cpu, cuda, cuda:N)")
    args = parser.parse_args(argv)
    device = "cuda:0" if args.device == "cuda" else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device is available here")
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; sections: {', '.join(SECTIONS)}")
    torch.set_num_threads(1)  # as nnbench's executors train (--threads 1)
    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False))
    gpu = f", {torch.cuda.get_device_name(torch.device(device))}" if device.startswith("cuda") else ""
    print(f"nnbench speed suite: torch {torch.__version__}, {os.cpu_count()} CPUs, 1 torch thread{gpu}, "
          f"{args.repeats} repetitions, {shutil.which('nnbench') or 'python -m nnbench'}", flush=True)
    figures: list[Figure] = []
    for section in sections:
        start = time.perf_counter()
        found = RUNNERS[section](catalogue, args.repeats, device)
        print(f"\n{section} ({time.perf_counter() - start:.0f}s)", flush=True)
        for figure in found:
            print(figure.line(), flush=True)
        figures += found
    targeted = [f for f in figures if f.target]
    missed = [f for f in targeted if not f.ok]
    print(f"\n{len(targeted) - len(missed)} of {len(targeted)} figures meet their targets"
          + (f"; missed: {', '.join(f.name.strip() for f in missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
