"""Print a random sample of mutmut's mutants of some modules, one name a line, for ``mutmut run``.

The draw is the one ``tools/mutants_in_fresh_processes.py`` makes: the module's mutant names in sorted
order, shuffled with ``random.Random(seed)``, the first ``--size`` of them (all of a smaller module). The
same mutants, the same seed and the same size give the same sample, so a measured score can be
reproduced::

    mutmut run --max-children 1 $(python tools/mutant_sample.py nnbench/analysis/rope.py --size 30 --seed 2026)

It generates the mutants with mutmut (3.8) when ``mutants/`` does not hold them yet.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mutants_in_fresh_processes import mutant_names  # noqa: E402  (a script beside this one, not a package)


def sample(module: str, size: int, seed: int) -> list[str]:
    """The first ``size`` of ``module``'s mutants in the order ``random.Random(seed)`` shuffles them."""
    names = mutant_names(module)
    random.Random(seed).shuffle(names)
    return names[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="+", help="mutated modules' paths, e.g. nnbench/analysis/rope.py")
    parser.add_argument("--size", type=int, required=True, help="mutants per module (all of a smaller one)")
    parser.add_argument("--seed", type=int, required=True, help="the random draw's seed")
    args = parser.parse_args()
    for module in args.modules:
        print("\n".join(sample(module, args.size, args.seed)))


if __name__ == "__main__":
    main()
