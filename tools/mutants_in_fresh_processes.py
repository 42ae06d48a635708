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

``--covering`` runs, for each mutant, only the tests that reach its function, as mutmut's own stats
record them (``mutants/mutmut-stats.json``, written by one ``mutmut run``), fastest first, stopping at the
first failure; ``--tests`` then adds tests after those (ones written since the stats were taken)::

    python tools/mutants_in_fresh_processes.py nnbench/training/ensemble.py --covering \\
        --sample 200 --seed 2026 --timeout 150 --out mutants/ensemble.txt

Exit status 0 of pytest means the mutant survived; ``timeout`` (a mutant that hangs) counts as found, and
``no-tests`` (no test reaches the mutated function) as not found.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mutmut.utils.format_utils import mangled_name_from_mutant_name

MUTANTS = Path("mutants")
STATS = MUTANTS / "mutmut-stats.json"


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


def covering_tests(name: str, stats: dict[str, Any]) -> list[str]:
    """The tests that reach the function ``name`` mutates, as mutmut's stats record them, fastest first
    (pytest node ids, relative to ``mutants/``)."""
    tests = stats["tests_by_mangled_function_name"].get(mangled_name_from_mutant_name(name), [])
    durations = stats["duration_by_test"]
    return sorted(tests, key=lambda test: (durations.get(test, durations.get(f"mutants/{test}", math.inf)), test))


def load_stats() -> dict[str, Any]:
    """mutmut's record of which tests reach which functions, and how long each test took."""
    if not STATS.exists():
        raise SystemExit(f"--covering reads {STATS}, which mutmut writes: run `mutmut run` once (it may be "
                         "stopped once it has begun testing mutants)")
    return json.loads(STATS.read_text())


def run_one(name: str, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """Run the tests against one mutant: ``killed``, ``survived`` or ``timeout``, the seconds, the test
    that failed first."""
    start = time.monotonic()
    if not tests:
        return "no-tests", 0.0, "-"
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
    parser.add_argument("--tests", default="", help="pytest arguments that select the tests, as one string "
                        "(with --covering: tests to run after the covering ones)")
    parser.add_argument("--covering", action="store_true", help="for each mutant, the tests that reach its "
                        "function in mutmut's stats (mutants/mutmut-stats.json), fastest first")
    parser.add_argument("--sample", type=int, help="test this many mutants, drawn at random (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="the random order's seed")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds before a mutant counts as a hang")
    parser.add_argument("--out", type=Path, required=True, help="results, one line per mutant (appended)")
    args = parser.parse_args()
    if not args.covering and not args.tests:
        parser.error("say which tests to run: --tests, --covering, or both")
    stats = load_stats() if args.covering else None
    names = mutant_names(args.module)
    random.Random(args.seed).shuffle(names)
    names = names[:args.sample] if args.sample else names
    seen = {line.split()[0]: line.split()[1] for line in args.out.read_text().splitlines()} if args.out.exists() else {}
    tests = shlex.split(args.tests)
    for number, name in enumerate(names, 1):
        if name in seen:
            continue
        chosen_tests = covering_tests(name, stats) + tests if stats is not None else tests
        outcome, seconds, failed = run_one(name, chosen_tests, args.timeout)
        seen[name] = outcome
        with args.out.open("a") as out:
            out.write(f"{name} {outcome} {seconds:.0f} {failed}\n")
        print(f"[{number}/{len(names)}] {outcome:8} {name}", flush=True)
    chosen = set(names)
    found = sum(outcome in ("killed", "timeout") for name, outcome in seen.items() if name in chosen)
    print(f"{found} of {len(names)} mutants found ({100 * found / len(names):.1f}%); survivors: "
          f"grep -E ' (survived|no-tests) ' {args.out}")


if __name__ == "__main__":
    main()
