"""Test mutmut's mutants of one module, each in a fresh pytest process.

mutmut runs every mutant in a process forked from one that has already run the tests. For
``nnbench/execution/local.py`` that is not enough: its tests start worker processes and a fork
server, and state they leave behind makes some mutants look killed when they are not. This script
runs each mutant the way a user would run the tests, in a new interpreter, and appends one line per
mutant to ``--out`` (name, exit status, seconds, the first failing test), so that a run can be
stopped and resumed. It generates the mutants with mutmut (3.8) when ``mutants/`` does not hold them yet::

    python tools/mutants_in_fresh_processes.py nnbench/execution/local.py \\
        --tests "tests/test_executors.py -k 'not ray and not stopping_a_parallel and not crashed_the_inline'" \\
        --sample 100 --seed 2026 --out processes.txt

Exit status 0 of pytest means the mutant survived; ``timeout`` (a mutant that hangs) counts as found.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

MUTANTS = Path("mutants")


def generate_mutants() -> None:
    """Write ``mutants/`` as ``mutmut run`` does before it tests anything (the configuration in
    ``pyproject.toml`` says which modules)."""
    import mutmut.__main__ as mutmut

    mutmut.set_mutant_under_test("mutant_generation")
    MUTANTS.mkdir(exist_ok=True)
    mutmut.copy_src_dir()
    mutmut.copy_also_copy_files()
    mutmut.setup_source_paths()
    mutmut.create_mutants(os.cpu_count() or 1)


def mutant_names(module: str) -> list[str]:
    """Every mutant mutmut generated for ``module`` (a path such as ``nnbench/execution/local.py``)."""
    meta = MUTANTS / f"{module}.meta"
    if not meta.exists():
        generate_mutants()
    if not meta.exists():
        raise SystemExit(f"no mutants of {module}: is it listed in [tool.mutmut] only_mutate in pyproject.toml?")
    return sorted(json.loads(meta.read_text())["exit_code_by_key"])


def run_one(name: str, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """Run the tests against one mutant: ``killed``, ``survived`` or ``timeout``, the seconds, the test
    that failed first."""
    start = time.monotonic()
    env = {**os.environ, "MUTANT_UNDER_TEST": name}
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                              cwd=MUTANTS, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start, "-"
    failed = re.search(r"^(?:FAILED|ERROR) \S*::(\S+)", done.stdout, re.M)
    outcome = "survived" if done.returncode == 0 else "killed"
    return outcome, time.monotonic() - start, failed.group(1) if failed else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", help="the mutated module's path, e.g. nnbench/execution/local.py")
    parser.add_argument("--tests", required=True, help="pytest arguments that select the tests, as one string")
    parser.add_argument("--sample", type=int, help="test this many mutants, drawn at random (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="the random order's seed")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds before a mutant counts as a hang")
    parser.add_argument("--out", type=Path, required=True, help="results, one line per mutant (appended)")
    args = parser.parse_args()
    names = mutant_names(args.module)
    random.Random(args.seed).shuffle(names)
    names = names[:args.sample] if args.sample else names
    seen = {line.split()[0]: line.split()[1] for line in args.out.read_text().splitlines()} if args.out.exists() else {}
    tests = shlex.split(args.tests)
    for number, name in enumerate(names, 1):
        if name in seen:
            continue
        outcome, seconds, failed = run_one(name, tests, args.timeout)
        seen[name] = outcome
        with args.out.open("a") as out:
            out.write(f"{name} {outcome} {seconds:.0f} {failed}\n")
        print(f"[{number}/{len(names)}] {outcome:8} {name}", flush=True)
    chosen = set(names)
    found = sum(outcome != "survived" for name, outcome in seen.items() if name in chosen)
    print(f"{found} of {len(names)} mutants found ({100 * found / len(names):.1f}%); survivors: "
          f"grep ' survived ' {args.out}")


if __name__ == "__main__":
    main()
