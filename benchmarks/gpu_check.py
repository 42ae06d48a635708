"""The GPU figures in one prepared script (under 5 minutes on one data-centre GPU).

    python benchmarks/gpu_check.py [--device cuda:0] [--repeats 2]

1. 64 seeds of the digits MLP and of the digits CNN, stacked against one by one (``train_item``),
   with what the planner picks for each group;
2. several trials per device against one: the same 16 one-by-one trials (digits MLP, 8 activations
   x 2 optimizers, 5 epochs, ``--no-vectorize``) as ``nnbench run --device cuda`` with
   ``--per-device 1``, ``4`` and ``auto`` (the measured number), wall time end to end, no report;
3. what ``device_capacity`` measures for that trial on this device.

No target was set for these figures; they go into the closing note as measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
TRIALS = ["--task", "digits", "--arch", "fnn", "--activation", "relu,tanh,gelu,silu,elu,selu,mish,softplus",
          "--optimizer", "adam,sgd", "--seeds", "1", "--epochs", "5", "--no-vectorize", "--no-report", "--quiet"]


def per_device(device: str, repeats: int) -> None:
    times: dict[str, list[float]] = {"1": [], "4": [], "auto": []}
    with tempfile.TemporaryDirectory(prefix="nnbench-gpu-") as tmp:
        for i in range(repeats):
            for setting in times:
                store = Path(tmp, f"{setting}-{i}.db")
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "nnbench", "run", *TRIALS, "--device", device, "--per-device",
                                setting, "--store", str(store)], check=True, stdout=subprocess.DEVNULL, cwd=tmp,
                               env={**os.environ, "NNBENCH_PLUGINS": "none"})
                times[setting].append(time.perf_counter() - start)
    alone = statistics.median(times["1"])
    for setting, values in times.items():
        median = statistics.median(values)
        print(f"  16 one-by-one MLP trials, --per-device {setting:<4}  {median:6.1f} s  "
              f"{alone / median:5.2f}x against one trial at a time", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("no CUDA device is available here")
    print(f"GPU check on {args.device}: {torch.cuda.get_device_name(torch.device(args.device))}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs", flush=True)
    print("1. 64 seeds stacked against one by one", flush=True)
    subprocess.run([sys.executable, str(HERE / "bench_stacking.py"), "--device", args.device, "--seeds", "64",
                    "--only", "fnn,cnn", "--repeats", str(args.repeats)], check=False)
    print("2. several trials per device against one", flush=True)
    per_device(args.device, args.repeats)
    print("3. the measured capacity of the device for one such trial", flush=True)
    from nnbench.loading.catalogue import collect_catalogue
    from nnbench.loading.plugins import make_plugin_manager
    from nnbench.planning.grid import expand_grid
    from nnbench.planning.gridfile import build_grid
    from nnbench.training.capacity import device_capacity

    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False))
    trial = expand_grid(build_grid(None, [], domain=catalogue.domain, task="digits", arch="fnn", activation="relu",
                                   optimizer="adam", seeds=1, epochs=5, device=args.device), catalogue)[0][0]
    capacity, detail = device_capacity(trial, catalogue)
    print(f"  {capacity} trials at once ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
