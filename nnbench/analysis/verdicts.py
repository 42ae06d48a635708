"""Verdicts in words, one per axis that varied, drawn only from the pairwise evidence.

A verdict says which levels are credibly better, which are practically equivalent (inside the ROPE),
and which comparisons are still undecided and how many seeds would settle them; it names the tasks each
claim covers, and never claims more than the Bayesian signed-rank test and the probability of
improvement allow: "a, b and c are practically equivalent" needs every pair among them equivalent on
every task named; "x is worse than a and b" needs each of a and b credibly better than x on each.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from nnbench.analysis import fairness, frames
from nnbench.analysis.pairwise import AxisComparison, PairEvidence, compare_axis
from nnbench.analysis.rope import Rope, parse_rope

RopeLike = Rope | str | float | Mapping[str, float] | None
MAX_PARTS = 4
"""Claims in one verdict; the rest are in its evidence."""
RECENT_EVIDENCE = 4
"""Evidence kept for the most recent trial frames: a run's console findings and its report read the same."""
_recent: OrderedDict[str, list[AxisComparison]] = OrderedDict()


@dataclass(frozen=True)
class Verdict:
    """One axis's verdict: ``text`` is the whole sentence (``optimizer: adam is better than sgd on ...``),
    made of ``parts``; ``tasks`` are the tasks its comparisons covered and ``anchor`` the id of its
    evidence in the report."""

    axis: str
    text: str
    parts: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    decisions: tuple[str, ...] = field(default=(), repr=False)

    @property
    def anchor(self) -> str:
        return f"comparison-{self.axis}"

    def __str__(self) -> str:
        return self.text


def findings(trials: pd.DataFrame, rope: RopeLike = None) -> list[Verdict]:
    """A :class:`Verdict` for every axis that varied with the others held fixed, in the report's order
    of axes. Tuning trials (search steps) take no part."""
    return [verdict(comparison) for comparison in axis_comparisons(trials, rope)]


def axis_comparisons(trials: pd.DataFrame, rope: RopeLike = None) -> list[AxisComparison]:
    """The pairwise evidence of every axis that varied (see :func:`nnbench.analysis.frames.varying_axes`)."""
    main = fairness.compared_trials(trials)
    if frames.ok_trials(main).empty:  # nothing finished ok (every trial timed out, say): nothing to compare
        return []
    chosen = parse_rope(rope)
    key = _fingerprint(main, chosen)
    if key is not None and key in _recent:
        _recent.move_to_end(key)
        return list(_recent[key])
    comparisons = [compare_axis(main, axis, chosen) for axis in frames.varying_axes(main)]
    if key is not None:
        _recent[key] = comparisons
        while len(_recent) > RECENT_EVIDENCE:
            _recent.popitem(last=False)
    return list(comparisons)


def _fingerprint(trials: pd.DataFrame, rope: Rope) -> str | None:
    """A digest of everything the evidence is computed from (every cell, the column names, the
    ROPE); ``None`` where a cell cannot be hashed (a frame built by hand holding lists)."""
    try:
        cells = pd.util.hash_pandas_object(trials, index=False).to_numpy().tobytes()
    except TypeError:
        return None
    digest = hashlib.sha256(cells)
    digest.update(repr((list(trials.columns), [str(t) for t in trials.dtypes], sorted(rope.given.items()))).encode())
    return digest.hexdigest()


# -- wording ---------------------------------------------------------------------------------------


def names(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def on_tasks(tasks: Sequence[str], every: Sequence[str]) -> str:
    """``on digits``, or ``on 2 of 3 tasks: digits and wine``."""
    if len(tasks) == 1:
        return f"on {tasks[0]}"
    return f"on {len(tasks)} of {len(every)} tasks: {names(tasks)}"


def probability(value: float) -> str:
    """Two decimals, but ``> 0.99`` rather than a ``1.00`` that no finite sample supports."""
    return "> 0.99" if value >= 0.995 else f"= {value:.2f}"


def at_least(values: Sequence[float]) -> str:
    """``= 0.97`` for one value, ``≥ 0.93 on each`` for several."""
    if len(values) == 1:
        return probability(values[0])
    low = min(values)
    return "> 0.99 on each" if low >= 0.995 else f"≥ {low:.2f} on each"


def _rows(pair: PairEvidence, tasks: Sequence[str]) -> pd.DataFrame:
    return pair.rows.set_index("task").loc[list(tasks)]


def better_claim(pair: PairEvidence, tasks: list[str], every: Sequence[str], winner: str, loser: str) -> str:
    """``adam is better than sgd on ... (probability of improvement 0.94 [0.90, 0.97]; Bayesian signed-rank:
    P(adam better) > 0.99)``."""
    rows = _rows(pair, tasks)
    flipped = winner == pair.second
    p = list(rows["p_second" if flipped else "p_first"])
    poi, low, high = pair.poi_over(tasks)
    if flipped:
        poi, low, high = 1 - poi, 1 - high, 1 - low
    return (f"{winner} is better than {loser} {on_tasks(tasks, every)} (probability of improvement {poi:.2f} "
            f"[{low:.2f}, {high:.2f}]; Bayesian signed-rank: P({winner} better) {at_least(p)})")


def rope_phrase(rows: pd.DataFrame) -> str:
    return ", ".join(dict.fromkeys(rows["rope_text"]))


def equivalent_claim(levels: list[str], pairs: list[PairEvidence], tasks: list[str], every: Sequence[str],
                     to: str | None = None) -> str:
    """``relu, gelu and tanh are practically equivalent on ... (ROPE ±0.005 accuracy: P(equivalent) ≥ 0.91
    on each)``; with ``to``, ``gelu is practically equivalent to relu ...``."""
    rows = pd.concat([_rows(p, tasks) for p in pairs])
    subject = (f"{names(levels)} {'is' if len(levels) == 1 else 'are'} practically equivalent to {to}" if to
               else f"{names(levels)} are practically equivalent")
    return (f"{subject} {on_tasks(tasks, every)} (ROPE {rope_phrase(rows)}: P(equivalent) "
            f"{at_least(list(rows['p_equivalent']))})")


def seeds_phrase(rows: pd.DataFrame) -> str:
    """How many more seeds would settle each undecided comparison."""
    more = []
    for task, needed, have in zip(rows.index, rows["seeds_needed"], rows["seeds"], strict=True):
        if math.isnan(needed):
            more.append((task, "more seeds would show it: the spread is unknown with so few blocks"))
        elif math.isinf(needed):
            more.append((task, "no practical number of seeds would: the difference is about as large as the ROPE"))
        else:
            extra = max(int(needed) - int(have), 1)
            more.append((task, f"{extra:,} more seed{'s' if extra > 1 else ''} would"))
    if len({text for _, text in more}) == 1:
        return more[0][1]
    return "; ".join(f"{text} on {task}" for task, text in more)


def undecided_claim(pair: PairEvidence, tasks: list[str], every: Sequence[str]) -> str:
    rows = _rows(pair, tasks)
    return f"not enough seeds to tell {pair.first} from {pair.second} {on_tasks(tasks, every)} ({seeds_phrase(rows)})"


def pair_claims(pair: PairEvidence, every: Sequence[str]) -> list[str]:
    """One claim per outcome of ``pair`` over its tasks (better, worse, equivalent, undecided)."""
    claims = []
    for decision in ("first", "second", "equivalent", "undecided"):
        tasks = pair.tasks(decision)
        if not tasks:
            continue
        if decision == "first":
            claims.append(better_claim(pair, tasks, every, pair.first, pair.second))
        elif decision == "second":
            claims.append(better_claim(pair, tasks, every, pair.second, pair.first))
        elif decision == "equivalent":
            claims.append(equivalent_claim([pair.first, pair.second], [pair], tasks, every))
        else:
            claims.append(undecided_claim(pair, tasks, every))
    return claims


# -- the verdict of one axis -----------------------------------------------------------------------


def _all(pair: PairEvidence | None, decision: str) -> bool:
    return pair is not None and not pair.rows.empty and bool(pair.rows["decision"].eq(decision).all())


def verdict(comparison: AxisComparison) -> Verdict:
    """The verdict of one axis from its pairwise evidence (see the module's docstring)."""
    axis, every = comparison.axis, comparison.tasks
    if not comparison.pairs:
        return Verdict(axis, f"{axis}: no two levels finished ok in matched blocks (same task, other axes and "
                             "seed), so nothing could be compared")
    best, others = comparison.levels[0], comparison.levels[1:]
    parts: list[str] = []
    handled: set[str] = set()
    equivalent = [level for level in others if _all(comparison.pair(best, level), "equivalent")]
    top = [best, *equivalent]
    if equivalent:
        pairs = [comparison.pair(a, b) for a, b in itertools.combinations(top, 2)]
        tasks = _shared_tasks([p for p in pairs if p is not None])
        if all(_all(p, "equivalent") for p in pairs) and tasks:
            parts.append(equivalent_claim(top, [p for p in pairs if p is not None], tasks, every))
        else:
            with_best = [p for level in equivalent if (p := comparison.pair(best, level)) is not None]
            parts.append(equivalent_claim(equivalent, with_best, _shared_tasks(with_best), every, to=best))
        handled |= set(equivalent)
    beaten = [level for level in others if level not in handled
              and all(_all(comparison.pair(winner, level), "first") for winner in top
                      if comparison.pair(winner, level) is not None)
              and comparison.pair(best, level) is not None and _all(comparison.pair(best, level), "first")]
    for covered, group in _by_tasks(comparison, best, beaten).items():
        winners = [w for w in top if all(comparison.pair(w, level) is not None for level in group)]
        lost = [p for level in group if (p := comparison.pair(best, level)) is not None]
        if len(group) == 1 and winners == [best]:
            parts.append(better_claim(lost[0], list(covered), every, best, group[0]))
        else:
            parts.append(_worse_claim(group, winners, lost, list(covered), every))
        handled |= set(group)
    for level in others:
        pair = comparison.pair(best, level)
        if level not in handled and pair is not None:
            parts.extend(pair_claims(pair, every))
    if not parts:  # levels compared only among themselves (each level against the best never met)
        parts = [claim for pair in comparison.pairs for claim in pair_claims(pair, every)]
    parts.sort(key=lambda part: part.startswith("not enough seeds"))  # what the evidence settles, first
    shown = parts[:MAX_PARTS]
    if len(parts) > MAX_PARTS:
        shown.append(f"and {len(parts) - MAX_PARTS} more comparisons in the evidence")
    decisions = tuple(dict.fromkeys(d for p in comparison.pairs for d in p.rows["decision"]))
    return Verdict(axis, f"{axis}: " + "; ".join(shown), tuple(parts), tuple(every), decisions)


def _shared_tasks(pairs: Sequence[PairEvidence | None]) -> list[str]:
    present = [set(p.tasks()) for p in pairs if p is not None]
    if not present:
        return []
    first = next(p for p in pairs if p is not None)
    return [task for task in first.tasks() if all(task in s for s in present)]


def _by_tasks(comparison: AxisComparison, best: str, levels: list[str]) -> dict[tuple[str, ...], list[str]]:
    groups: dict[tuple[str, ...], list[str]] = {}
    for level in levels:
        pair = comparison.pair(best, level)
        if pair is not None:
            groups.setdefault(tuple(pair.tasks()), []).append(level)
    return groups


def _worse_claim(levels: list[str], winners: list[str], pairs: list[PairEvidence], tasks: list[str],
                 every: Sequence[str]) -> str:
    """``identity and sigmoid are worse than relu and gelu on ... (probability of improvement of relu ≥ 0.9
    [...]; Bayesian signed-rank: P(relu better) ≥ 0.99 on each)``."""
    present = pairs
    intervals = [p.poi_over(tasks) for p in present]
    weakest = min(range(len(intervals)), key=lambda i: intervals[i][0])
    poi, low, high = intervals[weakest]
    p = [value for pair in present for value in _rows(pair, tasks)["p_first"]]
    verb = "is" if len(levels) == 1 else "are"
    quoted = "" if len(present) == 1 else "smallest "
    return (f"{names(levels)} {verb} worse than {names(winners)} {on_tasks(tasks, every)} ({quoted}probability "
            f"of improvement of {winners[0]} {poi:.2f} [{low:.2f}, {high:.2f}]; Bayesian signed-rank: "
            f"P({winners[0]} better) {at_least(p)})")
