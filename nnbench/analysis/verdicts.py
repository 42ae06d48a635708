"""Verdicts in words, one per axis that varied (and one per component whose code changed between runs),
drawn only from the pairwise evidence (:mod:`nnbench.analysis.pairwise`).

A verdict says which levels are credibly better, which are practically equivalent (inside the ROPE),
and which comparisons are still undecided and how many seeds would settle them; it names the tasks each
claim covers and the paired seeds it rests on, and never claims more than the family's corrected tests
allow: "a, b and c are practically equivalent" needs every pair among them shown equivalent on every
task named; "x is worse than a and b" needs each of a and b credibly better than x on each.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from nnbench.analysis import fairness, frames, paired, versions
from nnbench.analysis.pairwise import AxisComparison, PairEvidence, compare_axis
from nnbench.analysis.rope import Rope, parse_rope
from nnbench.analysis.versions import VersionNames

RopeLike = Rope | str | float | Mapping[str, float] | None
MAX_PARTS = 4
"""Claims in one verdict; the rest are in its evidence."""
RECENT_EVIDENCE = 4
"""Evidence kept for the most recent trial frames: a run's console findings and its report read the same."""
_recent: OrderedDict[str, list[AxisComparison]] = OrderedDict()


@dataclass(frozen=True)
class Verdict:
    """One axis's verdict: ``text`` is the whole sentence (``optimizer: adam is better than sgd on ...``),
    made of ``parts``; ``tasks`` are the tasks its comparisons covered, ``seeds`` the numbers of paired
    seeds they rest on, and ``anchor`` the id of its evidence in the report."""

    axis: str
    text: str
    parts: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    decisions: tuple[str, ...] = field(default=(), repr=False)
    key: str = ""
    seeds: tuple[int, ...] = ()

    @property
    def anchor(self) -> str:
        return f"comparison-{self.key or self.axis}"

    def __str__(self) -> str:
        return self.text


def findings(trials: pd.DataFrame, rope: RopeLike = None, alpha: float = paired.ALPHA,
             version_names: VersionNames | None = None) -> list[Verdict]:
    """A :class:`Verdict` for every axis that varied with the others held fixed, in the report's order
    of axes, then one for each component whose code changed between the runs. Tuning trials (search
    steps) take no part. ``alpha`` is the family-wise error rate of each axis's claims."""
    return [verdict(comparison) for comparison in axis_comparisons(trials, rope, alpha, version_names)]


def axis_comparisons(trials: pd.DataFrame, rope: RopeLike = None, alpha: float = paired.ALPHA,
                     version_names: VersionNames | None = None) -> list[AxisComparison]:
    """The pairwise evidence of every axis that varied (see :func:`nnbench.analysis.frames.varying_axes`)
    and of the versions of every component whose code changed between the runs."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha is an error rate between 0 and 1, not {alpha}")
    main = fairness.compared_trials(frames.with_variants(trials, version_names))
    if frames.ok_trials(main).empty:  # nothing finished ok (every trial timed out, say): nothing to compare
        return []
    chosen = parse_rope(rope)
    key = _fingerprint(main, chosen, alpha, version_names)
    if key is not None and key in _recent:
        _recent.move_to_end(key)
        return list(_recent[key])
    table = versions.version_table(main, version_names)
    titles = versions.titles_of(table)
    comparisons = [compare_axis(main, axis, chosen, alpha, version_table=table, titles=titles)
                   for axis in frames.varying_axes(main)]
    for changed in versions.version_frames(main, table):
        comparison = compare_axis(changed.frame, "version", chosen, alpha, key=changed.key, label=changed.label,
                                  titles=changed.titles)
        if comparison.pairs:
            comparisons.append(comparison)
    if key is not None:
        _recent[key] = comparisons
        while len(_recent) > RECENT_EVIDENCE:
            _recent.popitem(last=False)
    return list(comparisons)


def _fingerprint(trials: pd.DataFrame, rope: Rope, alpha: float, names: VersionNames | None) -> str | None:
    """A digest of everything the evidence is computed from (every cell, the column names, the
    ROPE, the error rate, the names of versions); ``None`` where a cell cannot be hashed (a frame built
    by hand holding lists)."""
    try:
        cells = pd.util.hash_pandas_object(trials, index=False).to_numpy().tobytes()
    except TypeError:
        return None
    digest = hashlib.sha256(cells)
    digest.update(repr((list(trials.columns), [str(t) for t in trials.dtypes], sorted(rope.given.items()), alpha,
                        sorted((names or {}).items()))).encode())
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


def seeds_text(counts: Sequence[int]) -> str:
    """``3 paired seeds``, ``5 paired seeds each`` or ``3 to 5 paired seeds each``."""
    low, high = min(counts), max(counts)
    each = " each" if len(counts) > 1 else ""
    amount = f"{low}" if low == high else f"{low} to {high}"
    return f"{amount} paired seed{'s' if high > 1 else ''}{each}"


def p_text(values: Sequence[float], bound: str = "≤") -> str:
    """``Holm-adjusted p = 0.012``, or ``p ≤ 0.03 on each`` for several."""
    worst = max(values)
    shown = "< 0.0001" if worst < 1e-4 else f"{'=' if len(values) == 1 else bound} {worst:.2g}"
    return f"Holm-adjusted p {shown}{' on each' if len(values) > 1 else ''}"


def advantage_text(row: pd.Series, flipped: bool = False) -> str:
    """``advantage +0.021 accuracy [0.008, 0.034]`` (of the first level, or of the second when ``flipped``)."""
    sign = -1.0 if flipped else 1.0
    mean, low, high = sign * row["advantage"], sign * row["advantage_low"], sign * row["advantage_high"]
    low, high = min(low, high), max(low, high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"advantage {mean:+.3g} {row['metric_name']}"
    return f"advantage {mean:+.3g} {row['metric_name']} [{low:+.3g}, {high:+.3g}]"


def _rows(pair: PairEvidence, tasks: Sequence[str]) -> pd.DataFrame:
    return pair.rows.set_index("task").loc[list(tasks)]


def better_claim(pair: PairEvidence, tasks: list[str], every: Sequence[str], winner: str, loser: str) -> str:
    """``adam is better than sgd on digits (advantage +0.021 accuracy [+0.008, +0.034] over 5 paired seeds;
    Holm-adjusted p = 0.012)``; over several tasks the seeds, the p-values and the wins."""
    rows = _rows(pair, tasks)
    flipped = winner == pair.second
    counts = list(rows["seeds"].astype(int))
    if len(tasks) == 1:
        evidence = f"{advantage_text(rows.iloc[0], flipped)} over {seeds_text(counts)}"
    else:
        poi, low, high = pair.poi_over(tasks)
        if flipped:
            poi, low, high = 1 - poi, 1 - high, 1 - low
        evidence = (f"over {seeds_text(counts)}; probability of improvement {poi:.2f} [{low:.2f}, {high:.2f}] "
                    "per seed")
    return f"{winner} is better than {loser} {on_tasks(tasks, every)} ({evidence}; {p_text(list(rows['p_adjusted']))})"


def rope_phrase(rows: pd.DataFrame) -> str:
    return ", ".join(dict.fromkeys(rows["rope_text"]))


def equivalent_claim(levels: list[str], pairs: list[PairEvidence], tasks: list[str], every: Sequence[str],
                     to: str | None = None) -> str:
    """``relu, gelu and tanh are practically equivalent on ... (ROPE ±0.005 accuracy; 10 paired seeds each;
    equivalence Holm-adjusted p ≤ 0.01 on each)``; with ``to``, ``gelu is practically equivalent to relu ...``."""
    rows = pd.concat([_rows(p, tasks) for p in pairs])
    subject = (f"{names(levels)} {'is' if len(levels) == 1 else 'are'} practically equivalent to {to}" if to
               else f"{names(levels)} are practically equivalent")
    counts = list(rows["seeds"].astype(int))
    return (f"{subject} {on_tasks(tasks, every)} (ROPE {rope_phrase(rows)}; {seeds_text(counts)}; equivalence "
            f"{p_text(list(rows['p_equivalence_adjusted']))})")


def seeds_phrase(rows: pd.DataFrame) -> str:
    """How many more seeds would settle each undecided comparison."""
    more = []
    for task, needed, have in zip(rows.index, rows["seeds_needed"], rows["seeds"], strict=True):
        if have < 2:
            more.append((task, "one paired seed has no spread: more seeds would show it"))
        elif math.isnan(needed):
            more.append((task, "more seeds would show it: the seeds agree too closely to estimate how many"))
        elif math.isinf(needed):
            more.append((task, "no practical number of seeds would: the difference is about as large as the ROPE"))
        else:
            extra = max(int(needed) - int(have), 1)
            more.append((task, f"about {extra:,} more seed{'s' if extra > 1 else ''} would"))
    if len({text for _, text in more}) == 1:
        return more[0][1]
    counted = [int(needed) - int(have) for needed, have in zip(rows["seeds_needed"], rows["seeds"], strict=True)
               if have >= 2 and math.isfinite(needed)]
    if len(more) > 3 and counted:  # one line, not a list of every task
        low, high = max(min(counted), 1), max(max(counted), 1)
        return f"between {low:,} and {high:,} more seeds would, depending on the task"
    return "; ".join(f"{text} on {task}" for task, text in more)


def undecided_claim(pair: PairEvidence, tasks: list[str], every: Sequence[str]) -> str:
    """``not enough seeds to tell a from b on digits (3 paired seeds: advantage +0.022 accuracy [-0.01, +0.053];
    about 6 more seeds would)``."""
    rows = _rows(pair, tasks)
    counts = list(rows["seeds"].astype(int))
    shown = f"{seeds_text(counts)}: {advantage_text(rows.iloc[0])}" if len(tasks) == 1 else seeds_text(counts)
    return (f"not enough seeds to tell {pair.first} from {pair.second} {on_tasks(tasks, every)} ({shown}; "
            f"{seeds_phrase(rows)})")


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


def across_claims(comparison: AxisComparison) -> list[str]:
    """``across 8 tasks, relu ranks above tanh and identity (ahead on 7 of 8 and 8 of 8; Wilcoxon signed-rank
    over tasks, Holm-adjusted p ≤ 0.03 on each)``: the decided across-task tests, one claim per winner."""
    across = comparison.across()
    decided = across[across["decision"].isin(["first", "second"])]
    by_winner: dict[str, list[tuple[str, int, int, float]]] = {}
    for row in decided.itertuples(index=False):
        winner, loser = (row.first, row.second) if row.decision == "first" else (row.second, row.first)
        ahead = row.ahead if row.decision == "first" else row.behind
        by_winner.setdefault(str(winner), []).append((str(loser), int(ahead), int(row.tasks), float(row.p_adjusted)))
    out = []
    for winner, beaten in by_winner.items():
        counts = sorted({tasks for _, _, tasks, _ in beaten})
        over = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        ahead = " and ".join(f"{a} of {n}" for _, a, n, _ in beaten) if len(beaten) <= 3 else "each"
        out.append(f"across {over} tasks, {winner} ranks above {names([loser for loser, *_ in beaten])} (ahead on "
                   f"{ahead}; Wilcoxon signed-rank over tasks, {p_text([p for *_, p in beaten])})")
    return out


# -- the verdict of one axis -----------------------------------------------------------------------


def _all(pair: PairEvidence | None, decision: str) -> bool:
    return pair is not None and not pair.rows.empty and bool(pair.rows["decision"].eq(decision).all())


def verdict(comparison: AxisComparison) -> Verdict:
    """The verdict of one axis from its pairwise evidence (see the module's docstring)."""
    axis, every, label = comparison.axis, comparison.tasks, comparison.label
    if not comparison.pairs:
        return Verdict(axis, f"{label}: no two levels finished ok in matched blocks (same task, other axes and "
                             "seed), so nothing could be compared", key=comparison.key)
    best, others = comparison.levels[0], comparison.levels[1:]
    parts: list[str] = []
    handled: set[str] = set()
    stated: set[frozenset[str]] = set()  # pairs whose every outcome a claim has put into words
    equivalent = [level for level in others if _all(comparison.pair(best, level), "equivalent")]
    top = [best, *equivalent]
    if equivalent:
        pairs = [comparison.pair(a, b) for a, b in itertools.combinations(top, 2)]
        tasks = _shared_tasks([p for p in pairs if p is not None])
        if all(_all(p, "equivalent") for p in pairs) and tasks:
            parts.append(equivalent_claim(top, [p for p in pairs if p is not None], tasks, every))
            stated |= {frozenset(pair) for pair in itertools.combinations(top, 2)}
        else:
            with_best = [p for level in equivalent if (p := comparison.pair(best, level)) is not None]
            parts.append(equivalent_claim(equivalent, with_best, _shared_tasks(with_best), every, to=best))
            stated |= {frozenset((best, level)) for level in equivalent}
        handled |= set(equivalent)
    beaten = [level for level in others if level not in handled
              and all(_all(comparison.pair(winner, level), "first") for winner in top
                      if comparison.pair(winner, level) is not None)
              and comparison.pair(best, level) is not None and _all(comparison.pair(best, level), "first")]
    for covered, group in _by_tasks(comparison, best, beaten).items():
        winners = [w for w in top if all(comparison.pair(w, level) is not None for level in group)]
        lost = [p for w in winners for level in group if (p := comparison.pair(w, level)) is not None]
        if len(group) == 1 and winners == [best]:
            parts.append(better_claim(lost[0], list(covered), every, best, group[0]))
        else:
            parts.append(_worse_claim(group, winners, lost, list(covered), every))
        handled |= set(group)
        stated |= {frozenset((pair.first, pair.second)) for pair in lost if set(pair.tasks()) == set(covered)}
    for level in others:
        pair = comparison.pair(best, level)
        if level not in handled and pair is not None:
            parts.extend(pair_claims(pair, every))
            stated.add(frozenset((pair.first, pair.second)))
    # What the evidence settled between the other levels (gelu better than tanh), undecided pairs aside.
    for pair in comparison.pairs:
        if frozenset((pair.first, pair.second)) not in stated:
            parts.extend(claim for claim in pair_claims(pair, every) if not claim.startswith("not enough seeds"))
    if not parts:  # levels compared only among themselves (each level against the best never met)
        parts = [claim for pair in comparison.pairs for claim in pair_claims(pair, every)]
    parts = [*across_claims(comparison), *parts]  # over every task first, then task by task
    parts.sort(key=lambda part: part.startswith("not enough seeds"))  # what the evidence settles, first
    shown = parts[:MAX_PARTS]
    if len(parts) > MAX_PARTS:
        more = len(parts) - MAX_PARTS
        shown.append(f"and {more} more comparison{'s' if more > 1 else ''} in the evidence")
    decisions = tuple(dict.fromkeys(d for p in comparison.pairs for d in p.rows["decision"]))
    return Verdict(axis, f"{label}: " + "; ".join(shown), tuple(parts), tuple(every), decisions, comparison.key,
                   tuple(comparison.seed_counts))


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
    """``identity and sigmoid are worse than relu and gelu on ... (5 paired seeds each; Holm-adjusted
    p ≤ 0.001 on each)``: every pair of a winner and a level named was decided on every task named."""
    rows = pd.concat([_rows(pair, tasks) for pair in pairs])
    verb = "is" if len(levels) == 1 else "are"
    return (f"{names(levels)} {verb} worse than {names(winners)} {on_tasks(tasks, every)} "
            f"({seeds_text(list(rows['seeds'].astype(int)))}; {p_text(list(rows['p_adjusted']))})")
