"""``liteprof diff``: how one run differs from another, scope by scope, with a noise check.

The result is the JSON diff object of ``SPEC.md`` (``liteprof diff --format json``); the
table and markdown formats render that one dictionary.

Statistical method
------------------
For every scope present in both runs the verdict is "same" unless **all** of these hold:

1. Both runs have at least ``MIN_EVENTS`` (2) events of the scope. With fewer there is no
   estimate of the noise at all, so no change can be told apart from it.
2. A two-sided **Mann-Whitney U test** of the two runs' event durations rejects "the two
   samples come from the same distribution" at ``ALPHA`` = 0.01. The test uses the normal
   approximation with the tie correction and a continuity correction of 0.5 (the
   asymptotic test of ``scipy.stats.mannwhitneyu``). It is rank based, so a handful of
   huge outliers (a GC pause, a preempted thread) cannot make it significant, and it
   makes no assumption about the shape of the durations, which are usually skewed.
   Ranks are computed with numpy (one sort of both samples together, average ranks for
   ties), never with a Python loop per event. A side with more than ``MAX_TEST_EVENTS``
   (200,000) events is thinned to that many evenly spaced order statistics of its sorted
   durations: deterministic, it keeps the distribution's shape, and it is conservative
   (the test then assumes fewer observations than there were, so p-values grow rather
   than shrink). Such sides are large enough that the threshold, not the test, decides.
   The normal approximation is itself conservative for tiny samples: 5 against 5 events,
   even completely separated, never reach p < 0.01 (p = 0.012); 6 against 6 do
   (p = 0.005).
3. The change of the mean, ``new mean / base mean - 1``, exceeds ``threshold`` percent in
   the direction of the U test's shift: above it for "slower", below minus it for
   "faster".
4. That change is not the work of a few extreme events: either a **confidence interval
   of the ratio of the means** (new / base) at the same level (99%) excludes 1 on that
   side, or the medians (``p50_ns``) moved by more than the threshold too. The U test
   alone does not guarantee that the mean moved: with large samples a tiny but
   consistent shift of the bulk is significant while the mean's change beyond the
   threshold comes from one outlier (a preempted thread), which is chance. The interval
   catches that case, and also accepts a real regression of the tail only (a tenth of
   the events ten times slower: the median does not move, the mean does, reliably). The
   medians catch the opposite case: the bulk clearly moved but one outlier in a small
   sample widens the mean's interval past 1. The interval is analytic (the delta method
   on the log of the ratio, ``se^2 = s_b^2 / (n_b m_b^2) + s_n^2 / (n_n m_n^2)``, with a
   Student t quantile at Welch-Satterthwaite degrees of freedom), computed on all
   events; a bootstrap would cost thousands of resamples per scope and need a random
   generator. It is omitted (``null``) where a mean is 0, which only happens when every
   event of that run lasted 0 ns: such a side has no noise and the U test decides.

When the base mean is 0 and the new one is not, the relative change is undefined:
``change`` is ``null`` although both runs have the scope (JSON has no infinity). The
scope is "slower" when the U test says so, as an unbounded change exceeds every
threshold, and ``regressions`` counts it as exceeding every limit.

Everything is deterministic: no random numbers are drawn, so the same logs always give
the same diff.

Extra keys beyond SPEC's: top level ``threshold`` (percent), ``alpha`` and ``test``; per
scope ``p_value`` (the U test's two-sided p-value, ``null`` where it was not run) and
``change_ci`` (``[low, high]``, the confidence interval of ``change``, ``null`` where not
computed).

Order of ``scopes``: the scopes present in both runs, largest ``|change|`` first (an
undefined change counts as infinite), then the added ones, then the removed ones; ties by
name. The scopes that moved most come first, which is where a reader looks.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from ._reader import Events, percentile_rank
from .renderers.base import fmt_duration, one_line, shorten
from .renderers.markdown import md_cell, md_table
from .renderers.table import plain_table

ALPHA = 0.01
MIN_EVENTS = 2
MAX_TEST_EVENTS = 200_000
TEST_NAME = "mann-whitney-u"
VERDICTS = ("slower", "faster", "same", "added", "removed")
DIFF_FORMATS = ("table", "json", "markdown")

HEADERS = [
    "Scope",
    "Base count",
    "New count",
    "Base mean",
    "New mean",
    "Base p50",
    "New p50",
    "Base p99",
    "New p99",
    "Change",
    "Verdict",
]

IntArray = npt.NDArray[np.int64]

# exp() overflows a float above ~709.78; a bound this far out means "unbounded" and must
# stay a finite number, as JSON has no infinity.
_MAX_EXP = 700.0


# -- statistics ---------------------------------------------------------------------------


def mann_whitney(base: IntArray, new: IntArray) -> tuple[float, float]:
    """The two-sided Mann-Whitney U test of ``new`` against ``base``: ``(z, p)``.

    ``z`` is positive when ``new`` tends to be larger. Normal approximation with the tie
    correction and a continuity correction of 0.5. Where the variance of U is 0 (every
    value equal, or an empty side) the test cannot see a difference: ``(0.0, 1.0)``.
    """
    n1, n2 = int(base.size), int(new.size)
    n = n1 + n2
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    both = np.concatenate((base, new))
    order = np.argsort(both, kind="stable")
    ordered = both[order]
    # Runs of equal values share the average of the ranks they span (1-based).
    edges = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [n]))
    sizes = ends - starts
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, sizes)
    u_new = float(ranks[n1:].sum()) - n2 * (n2 + 1) / 2.0
    mean_u = n1 * n2 / 2.0
    t = sizes.astype(np.float64)
    tie_term = float((t * t * t - t).sum()) / (n * (n - 1)) if n > 1 else 0.0
    var_u = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if not var_u > 0.0:
        return 0.0, 1.0
    delta = u_new - mean_u
    delta = math.copysign(max(abs(delta) - 0.5, 0.0), delta)
    z = delta / math.sqrt(var_u)
    return z, math.erfc(abs(z) / math.sqrt(2.0))


def thin(sorted_durations: IntArray, limit: int = MAX_TEST_EVENTS) -> IntArray:
    """At most ``limit`` evenly spaced order statistics of a sorted array (the midpoints
    of ``limit`` equal slices): a deterministic stand-in for a random subsample."""
    n = int(sorted_durations.size)
    if n <= limit:
        return sorted_durations
    k = np.arange(limit, dtype=np.int64)
    return sorted_durations[((2 * k + 1) * n) // (2 * limit)]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The continued fraction converges fast only below this point; use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a) above it.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df`` degrees of freedom, ``t >= 0``."""
    return 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))


def _bisect_upper(tail: float, sf: Callable[[float], float]) -> float:
    """The ``x >= 0`` where the decreasing survival function ``sf`` equals ``tail``."""
    lo, hi = 0.0, 1.0
    while sf(hi) > tail:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return hi
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if sf(mid) > tail:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


@functools.lru_cache(maxsize=16)
def normal_quantile(p: float) -> float:
    """The ``p`` quantile of the standard normal distribution, ``0.5 <= p < 1``."""
    return _bisect_upper(1.0 - p, lambda x: 0.5 * math.erfc(x / math.sqrt(2.0)))


def _t_pdf(t: float, df: float) -> float:
    """The density of Student's t with ``df`` degrees of freedom at ``t``."""
    return math.exp(
        math.lgamma((df + 1.0) / 2.0)
        - math.lgamma(df / 2.0)
        - 0.5 * math.log(df * math.pi)
        - (df + 1.0) / 2.0 * math.log1p(t * t / df)
    )


def _cornish_fisher(p: float, df: float) -> float:
    """Student's t quantile from the normal one by the Cornish-Fisher expansion (Abramowitz
    and Stegun 26.7.5): relative error below 1e-11 from 200 degrees of freedom on, within
    about 1% from 3 on."""
    z = normal_quantile(p)
    z3, z5, z7, z9 = z**3, z**5, z**7, z**9
    return (
        z
        + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df**2)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df**3)
        + (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / (92160.0 * df**4)
    )


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` (> 0, maybe fractional) degrees of
    freedom, ``0.5 <= p < 1``.

    From 200 degrees of freedom on, the Cornish-Fisher expansion (exact to 1e-11). Below,
    Newton's method on the exact survival function, started there and kept inside a
    bracket that bisection narrows whenever a step would leave it: about three
    evaluations of the incomplete beta function, where bisection took fifty, which
    mattered with thousands of scopes.
    """
    if df >= 200.0:
        return _cornish_fisher(p, df)
    tail = 1.0 - p
    x = min(max(_cornish_fisher(p, df), 1e-3), 1e12)
    lo, hi = 0.0, math.inf
    for _ in range(500):
        excess = t_sf(x, df) - tail  # > 0: x is still below the quantile
        if excess == 0.0:
            return x
        if excess > 0.0:
            lo = x
        else:
            hi = x
        following = x + excess / _t_pdf(x, df)
        if not lo < following < hi:
            following = x * 2.0 if math.isinf(hi) else (lo + hi) / 2.0
        if abs(following - x) <= 1e-14 * x:
            return following
        x = following
    return x


def change_interval(
    base: IntArray, new: IntArray, alpha: float = ALPHA
) -> tuple[float, float] | None:
    """The ``1 - alpha`` confidence interval of ``mean(new) / mean(base) - 1``.

    The delta method on the log of the ratio with a Welch-Satterthwaite t quantile;
    ``None`` with fewer than 2 events on a side or a mean of 0.
    """
    n1, n2 = int(base.size), int(new.size)
    if n1 < 2 or n2 < 2:
        return None
    m1 = float(base.mean(dtype=np.float64))
    m2 = float(new.mean(dtype=np.float64))
    if not (m1 > 0.0 and m2 > 0.0):
        return None
    a = float(base.var(ddof=1, dtype=np.float64)) / (n1 * m1 * m1)
    b = float(new.var(ddof=1, dtype=np.float64)) / (n2 * m2 * m2)
    log_ratio = math.log(m2 / m1)
    se2 = a + b
    if se2 <= 0.0:  # no noise on either side: the ratio is known exactly
        point = math.expm1(log_ratio)
        return point, point
    df = se2 * se2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    half = t_quantile(1.0 - alpha / 2.0, df) * math.sqrt(se2)
    low = math.expm1(max(log_ratio - half, -_MAX_EXP))
    high = math.expm1(min(log_ratio + half, _MAX_EXP))
    return low, high


# -- the diff object ----------------------------------------------------------------------


def scope_durations(ev: Events) -> dict[str, IntArray]:
    """Each scope's event durations in ``ev``, sorted ascending (int64 ns)."""
    out: dict[str, IntArray] = {}
    if ev.dur.size == 0:
        return out
    key = ev.name.astype(np.int64)
    counts = np.bincount(key, minlength=len(ev.names))
    order = np.argsort(key, kind="stable")
    dur = ev.dur[order].astype(np.int64, copy=False)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    for i in np.flatnonzero(counts).tolist():
        seg = dur[bounds[i] : bounds[i + 1]]
        name = ev.names[i]
        if name in out:  # the same name twice in ``names``: one scope all the same
            seg = np.concatenate((out[name], seg))
        seg.sort()
        out[name] = seg
    return out


def _stats(durations: IntArray) -> dict[str, Any]:
    """SPEC's per-run statistics of one scope; ``durations`` sorted and not empty."""
    n = int(durations.size)
    total = int(durations.sum())
    return {
        "count": n,
        "total_ns": total,
        "mean_ns": total / n,
        "p50_ns": int(durations[percentile_rank(n, 50)]),
        "p99_ns": int(durations[percentile_rank(n, 99)]),
    }


def _verdict(
    change: float | None,
    z: float,
    interval: tuple[float, float] | None,
    base_p50: int,
    new_p50: int,
    limit: float,
) -> str:
    """The verdict of a scope whose U test is significant (rules 3 and 4 above)."""
    if change is None:  # base mean 0, new mean not: an unbounded increase
        return "slower" if z > 0 else "same"
    if change > limit and z > 0:
        if interval is None or interval[0] > 0 or new_p50 > base_p50 * (1.0 + limit):
            return "slower"
    elif change < -limit and z < 0:
        if interval is None or interval[1] < 0 or new_p50 < base_p50 * (1.0 - limit):
            return "faster"
    return "same"


def _compare(name: str, base: IntArray, new: IntArray, threshold: float) -> dict[str, Any]:
    """The diff entry of a scope present in both runs."""
    bstats, nstats = _stats(base), _stats(new)
    bmean, nmean = bstats["mean_ns"], nstats["mean_ns"]
    change: float | None
    if bmean > 0:
        change = nmean / bmean - 1.0
    else:
        change = 0.0 if nmean == 0 else None
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    verdict = "same"
    if base.size >= MIN_EVENTS and new.size >= MIN_EVENTS:
        z, p_value = mann_whitney(thin(base), thin(new))
        interval = change_interval(base, new)
        if p_value < ALPHA:
            verdict = _verdict(
                change, z, interval, bstats["p50_ns"], nstats["p50_ns"], threshold / 100.0
            )
    return {
        "name": name,
        "base": bstats,
        "new": nstats,
        "change": change,
        "verdict": verdict,
        "p_value": p_value,
        "change_ci": None if interval is None else [interval[0], interval[1]],
    }


def _sort_key(row: dict[str, Any]) -> tuple[int, float, str]:
    verdict = row["verdict"]
    if verdict == "added":
        return 1, 0.0, row["name"]
    if verdict == "removed":
        return 2, 0.0, row["name"]
    change = row["change"]
    return 0, (-math.inf if change is None else -abs(change)), row["name"]


def build_diff(base: Events, new: Events, *, threshold: float = 5.0) -> dict[str, Any]:
    """The JSON diff object of SPEC.md: how ``new`` differs from ``base``, per scope.

    ``threshold`` is the smallest relative change of the mean, in percent, that can make
    a scope "slower" or "faster"; see the module docstring for the statistics.
    """
    if not (threshold >= 0.0) or math.isinf(threshold):
        raise ValueError(f"threshold must be a finite percentage >= 0, not {threshold!r}")
    before = scope_durations(base)
    after = scope_durations(new)
    rows: list[dict[str, Any]] = []
    for name, durations in before.items():
        other = after.get(name)
        if other is None:
            rows.append(
                {
                    "name": name,
                    "base": _stats(durations),
                    "new": None,
                    "change": None,
                    "verdict": "removed",
                    "p_value": None,
                    "change_ci": None,
                }
            )
        else:
            rows.append(_compare(name, durations, other, threshold))
    for name, durations in after.items():
        if name not in before:
            rows.append(
                {
                    "name": name,
                    "base": None,
                    "new": _stats(durations),
                    "change": None,
                    "verdict": "added",
                    "p_value": None,
                    "change_ci": None,
                }
            )
    rows.sort(key=_sort_key)
    return {
        "base": list(base.sources),
        "new": list(new.sources),
        "threshold": float(threshold),
        "alpha": ALPHA,
        "test": TEST_NAME,
        "scopes": rows,
    }


def regressions(diff: dict[str, Any], fail_above_pct: float) -> list[str]:
    """Names of the scopes that are "slower" by more than ``fail_above_pct`` percent.

    A "slower" scope whose change is undefined (a base mean of 0) exceeds every limit.
    """
    limit = fail_above_pct / 100.0
    return [
        row["name"]
        for row in diff["scopes"]
        if row["verdict"] == "slower" and (row["change"] is None or row["change"] > limit)
    ]


# -- rendering ----------------------------------------------------------------------------


def fmt_change(change: float | None) -> str:
    """``+12.3%``; ``-`` where the change is undefined."""
    return "-" if change is None else f"{100.0 * change:+.1f}%"


def _cells(row: dict[str, Any], name_width: int | None) -> list[str]:
    name = one_line(row["name"])
    if name_width:
        name = shorten(name, name_width)
    b, n = row["base"], row["new"]

    def count(side: dict[str, Any] | None) -> str:
        return "-" if side is None else str(side["count"])

    def dur(side: dict[str, Any] | None, key: str) -> str:
        return "-" if side is None else fmt_duration(side[key])

    return [
        name,
        count(b),
        count(n),
        dur(b, "mean_ns"),
        dur(n, "mean_ns"),
        dur(b, "p50_ns"),
        dur(n, "p50_ns"),
        dur(b, "p99_ns"),
        dur(n, "p99_ns"),
        fmt_change(row["change"]),
        str(row["verdict"]),
    ]


def summary_lines(diff: dict[str, Any]) -> list[str]:
    """The verdict counts and the settings, then the sources of both runs."""
    counts = {v: 0 for v in VERDICTS}
    for row in diff["scopes"]:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    threshold = diff.get("threshold")
    settings = [] if threshold is None else [f"threshold {threshold:g}%"]
    settings.append(f"Mann-Whitney U at alpha {diff.get('alpha', ALPHA):g}")
    return [
        f"liteprof diff: {len(diff['scopes'])} scopes: "
        + ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
        + f" ({', '.join(settings)})",
        "base: " + ", ".join(one_line(s) for s in diff.get("base", [])),
        "new: " + ", ".join(one_line(s) for s in diff.get("new", [])),
    ]


def _plain(diff: dict[str, Any]) -> str:
    out = summary_lines(diff) + [""]
    out += plain_table(HEADERS, [_cells(r, 100) for r in diff["scopes"]])
    return "\n".join(out)


def _rich(diff: dict[str, Any]) -> str:
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=sys.stdout.isatty(), width=200)
    for line in summary_lines(diff):
        console.print(Text(line))
    table = Table()
    table.add_column(HEADERS[0], justify="left", overflow="ellipsis", no_wrap=True)
    for header in HEADERS[1:]:
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    styles = {"slower": "red", "faster": "green", "added": "cyan", "removed": "magenta"}
    for row in diff["scopes"]:
        # Names shorter than in the plain table: the figures must fit beside them.
        cells = _cells(row, 60)
        texts = [Text(c) for c in cells]
        texts[-1].stylize(styles.get(row["verdict"], ""))
        table.add_row(*texts)
    console.print(table)
    return buf.getvalue().rstrip("\n")


def _markdown(diff: dict[str, Any]) -> str:
    out = ["# liteprof diff", ""]
    out += [md_cell(line) + "  " for line in summary_lines(diff)]
    out += [""]
    out += md_table(HEADERS, [_cells(r, None) for r in diff["scopes"]])
    return "\n".join(out)


def render_diff(diff: dict[str, Any], fmt: str) -> str:
    """Render a diff object (see ``build_diff``) as ``table``, ``json`` or ``markdown``.

    ``table`` is a rich table when stdout is a terminal and rich is installed, plain
    aligned text otherwise; ``plain`` and ``rich`` force one of them.
    """
    if fmt == "json":
        return json.dumps(diff, indent=2, ensure_ascii=False)
    if fmt == "markdown":
        return _markdown(diff)
    if fmt == "plain":
        return _plain(diff)
    if fmt == "rich":
        return _rich(diff)
    if fmt == "table":
        if sys.stdout.isatty():
            try:
                import rich  # noqa: F401
            except ImportError:
                pass
            else:
                return _rich(diff)
        return _plain(diff)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(DIFF_FORMATS)}")
