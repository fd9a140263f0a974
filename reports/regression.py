"""CI regression mode: compare a run's measures with a committed baseline, with exact tests.

The baseline (``scenarios/ci/baseline.json``, format ``releasesim-baseline/2``) holds, per
scenario and per measure of ``releasesim.reports.measures``, the ``mean``, sample ``std``, ``n``
(replications where the measure is defined) and the per-replication ``values`` themselves
(6 significant digits). A check compares the current run with it. Every reference
distribution comes from the baseline and the two replication counts, never from the
current run's spread, so a regression cannot widen its own tolerance (the old rule, a
Welch standard error that included the current run's spread, let 8 forged approvals in 30
replications pass against a baseline of 0). Each check has a rule (``rule`` column):

``invariant``  every invariant must be 0 in every replication: any non-zero value is
               ``violated``, whatever the baseline says.
``safety``     ``SAFETY`` measures (``malicious_approved``, ``malicious_proposed``,
               ``malicious_installed_fraction``, ``malicious_running_fraction``) whose
               baseline is 0 in at least ``MIN_SAFETY_N`` (30) replications: any non-zero
               value in any replication (one forged approval, one malicious install) is
               ``regressed``. A CI scenario whose baseline shows no forgery in 30
               replications is declared forgery-free; a scenario with a real, small forgery
               probability belongs in a sweep, or needs a baseline that shows it.
``exact``      replication-level probabilities (unit ``probability``): ``k_now`` of ``n_now``
               replications against ``k_base = round(mean_base * n_base)`` of ``n_base``,
               one-sided Fisher exact test (``fisher_tail``: hypergeometric tail in exact
               integers with ``math.comb``), at level ``ALPHA_EXACT`` = 0.002.
``rank``       every other measure: one-sided Wilcoxon-Mann-Whitney rank-sum test of the
               current values against the baseline's (``rank_sum_tail``: the exact
               permutation distribution of the mid-rank sum, ties included, for up to
               ``EXACT_MAX_N`` pooled replications; the normal approximation with the tie
               correction above), at level ``ALPHA_RANK`` = 1e-4. Its null distribution
               depends on the two counts and the ties only, so it holds its level for the
               skewed, heavy-tailed timings of the suite (skewness 5-19: a rare slow
               replication), where a mean test scaled by the baseline's standard deviation
               fired in 15% of clean re-runs when this rule was chosen (1,770 pairs of
               30-replication suites cut from 1,800 replications per scenario; this rule:
               0.3%). For 0/1 values it is Fisher's test. A time the horizon can cut
               off is compared restricted to the horizon (``checked_values``): a
               replication that never saw the event ranks last, it never drops out.

A significant move must also exceed the practical floor (``tolerance`` column)
``max(ABS_FLOOR[unit], REL_FLOOR * |mean_base|)`` in mean (``diff = mean_now - mean_base``)
in its bad direction (``Measure.worse``) to be ``regressed``; as large a significant move
the other way is ``improved`` (passes; refresh the baseline).

False alarms. A clean re-run (same code, new random numbers) fails only if a check fires
by chance; by Bonferroni that chance is at most the sum of the per-check one-sided levels
(``level`` column; 0 for invariants and the safety rule, which a clean run of a
forgery-free scenario cannot trip; 0 for a measure undefined in either run).
``ALPHA_EXACT`` = 0.002 is the round level at which 9 of 30 replications against 0 of 30
(p = 0.00097; 8 of 30: p = 0.0023) is a regression; ``ALPHA_RANK`` is twenty times smaller
because the other measures are many. The shipped suite (4 scenarios of 5 probabilities and
21 other measures) sums to at most 4 x (5 x 0.002 + 21 x 0.0001) = 4.84% even if no safety
rule applied, so its false-alarm rate is <= 5% (``FAMILY_ALPHA``); both tests are exact and
discrete, so the true rate is lower. ``false_alarm_bound(rows)`` gives the sum for a run and
``format_diff`` prints it. ``tests/test_check.py`` re-runs the suite with 30 seeds against
a baseline of another seed.

Pure functions on tables and dicts; writing the baseline is atomic (temp file, fsync,
``os.replace``). Must not import ``sim`` or ``model``; no scipy.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from releasesim.reports.measures import BY_NAME, INVARIANTS, MEASURES, RESTRICTED_SUFFIX, Measure
from releasesim.reports.report import atomic_write

FORMAT = "releasesim-baseline/2"
ALPHA_EXACT = 0.002
ALPHA_RANK = 0.0001
FAMILY_ALPHA = 0.05
EXACT_MAX_N = 120
DIGITS = 6
MIN_SAFETY_N = 30
SAFETY: tuple[str, ...] = ("malicious_approved", "malicious_proposed",
                           "malicious_installed_fraction", "malicious_running_fraction")
REL_FLOOR = 0.10
ABS_FLOOR: dict[str, float] = {
    "fraction": 0.01,
    "probability": 0.05,
    "s": 5.0,
    "count": 0.5,
    "node*s": 50.0,
}
RULES = ("invariant", "safety", "exact", "rank")
STATUSES = ("ok", "regressed", "improved", "violated", "missing", "new")
FAILING = ("regressed", "violated", "missing")
COLUMNS = ("scenario", "metric", "kind", "unit", "worse", "base_mean", "base_std", "base_n",
           "mean", "std", "n", "diff", "tolerance", "status", "rule", "p_value", "level")
RULE_TEXT = (
    "invariants must be 0 in every replication; malicious_approved, malicious_proposed, "
    "malicious_installed_fraction and malicious_running_fraction with a baseline of 0 in >= "
    f"{MIN_SAFETY_N} replications fail on any non-zero value; probabilities: one-sided Fisher "
    f"exact test of k_now/n_now against k_base/n_base at level {ALPHA_EXACT}; other measures: "
    "one-sided exact Wilcoxon-Mann-Whitney rank-sum test of the values against the baseline's "
    f"at level {ALPHA_RANK}; a significant move regresses when the mean moved the bad way by "
    f"more than max(unit floor {ABS_FLOOR}, {REL_FLOOR:.0%} of the baseline mean); the levels "
    f"sum to <= {FAMILY_ALPHA:.0%} over the shipped suite (Bonferroni bound on its "
    "false-alarm rate)"
)


class BaselineError(Exception):
    """The baseline file is missing, unreadable or not a releasesim baseline."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Stats:
    mean: float
    std: float
    n: int


def stats(values: np.ndarray) -> Stats:
    """Mean, sample std (0 for n < 2) and count of the finite values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Stats(math.nan, math.nan, 0)
    return Stats(float(np.mean(x)), float(np.std(x, ddof=1)) if n > 1 else 0.0, n)


def rounded(values: np.ndarray) -> np.ndarray:
    """The finite values at ``DIGITS`` significant digits (as stored in the baseline)."""
    x = np.asarray(values, dtype=float)
    return np.array([float(f"{v:.{DIGITS}g}") for v in x[np.isfinite(x)]], dtype=float)


def checked_values(values: pd.DataFrame, measure: Measure) -> np.ndarray:
    """The per-replication values a check compares: the measure's own, except for a time
    the horizon can cut off (``km``), whose value is restricted to the horizon (the time
    if it happened, else ``horizon - origin``), so a replication that never saw the event
    ranks last instead of being left out."""
    column = measure.name
    if measure.method == "km" and measure.name + RESTRICTED_SUFFIX in values.columns:
        column = measure.name + RESTRICTED_SUFFIX
    return np.asarray(values[column].to_numpy(), dtype=float)


def scenario_entry(values: pd.DataFrame, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The baseline entry of one scenario from its per-replication measure values."""
    metrics = {}
    for m in MEASURES:
        if m.name in values.columns:
            x = checked_values(values, m)
            s = stats(x)
            metrics[m.name] = {"mean": _json_float(s.mean), "std": _json_float(s.std),
                               "n": s.n, "values": rounded(x).tolist()}
    return {**(info or {}), "replications": len(values), "metrics": metrics}


def make_baseline(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The whole baseline document (sorted by scenario name)."""
    return {"format": FORMAT, "rule": RULE_TEXT,
            "scenarios": {k: entries[k] for k in sorted(entries)}}


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def read_baseline(path: str | Path) -> dict[str, Any]:
    """The baseline document; ``BaselineError`` unless it is a well-formed ``FORMAT`` file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"{path}: no baseline; create it with --update-baseline") from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{path}: cannot read the baseline: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise BaselineError(f"{path}: not a {FORMAT} file (format {found!r}); "
                            "regenerate it with --update-baseline")
    for scenario, entry in (data.get("scenarios") or {}).items():
        for name, raw in (entry.get("metrics") or {}).items():
            if len(raw.get("values") or []) != int(raw.get("n", 0)):
                raise BaselineError(f"{path}: {scenario}.{name}: 'values' does not hold its "
                                    f"n = {raw.get('n')} values")
    return data


def write_baseline(path: str | Path, baseline: dict[str, Any]) -> None:
    """Write the baseline atomically (temp file in the same folder, fsync, os.replace).

    Lists of numbers are written on one line each, so the file stays readable.
    """
    text = json.dumps(baseline, indent=2, sort_keys=False, allow_nan=False)
    text = re.sub(r"\[\s*([-+0-9.eE,\s]*?)\s*\]",
                  lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"
    atomic_write(Path(path), text.encode("utf-8"))


# --------------------------------------------------------------------------- the tests


def fisher_tail(k_now: int, n_now: int, k_base: int, n_base: int,
                worse: str = "higher") -> float:
    """One-sided Fisher exact p-value of ``k_now``/``n_now`` against ``k_base``/``n_base``.

    ``X`` = events among ``n_now`` replications drawn without replacement from the pooled
    ``n_base + n_now`` replications with ``k_base + k_now`` events (hypergeometric: the
    null hypothesis "same probability"); returns ``P(X >= k_now)`` when higher is worse,
    ``P(X <= k_now)`` when lower is worse. Exact integer sums (``math.comb``), one division.
    """
    for k, n in ((k_now, n_now), (k_base, n_base)):
        if not 0 <= k <= n:
            raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    _check_worse(worse)
    total, events = n_now + n_base, k_now + k_base
    low, high = max(0, events - n_base), min(events, n_now)
    xs = range(k_now, high + 1) if worse == "higher" else range(low, k_now + 1)
    tail = sum(math.comb(events, x) * math.comb(total - events, n_now - x) for x in xs)
    return tail / math.comb(total, n_now)


def rank_sum_tail(base: np.ndarray, now: np.ndarray, worse: str = "higher") -> float:
    """One-sided Wilcoxon-Mann-Whitney p-value of ``now`` against ``base``.

    ``S`` = the sum of the mid-ranks (ties share their average rank) of ``n_now`` values
    drawn without replacement from the pooled values (the null hypothesis "same
    distribution"); returns ``P(S >= s_now)`` when higher is worse, ``P(S <= s_now)`` when
    lower is worse. Exact (a count of subsets by size and doubled rank sum, in floats) for
    up to ``EXACT_MAX_N`` pooled values; above, the normal approximation with the tie
    correction and a continuity correction.
    """
    _check_worse(worse)
    base, now = np.asarray(base, dtype=float), np.asarray(now, dtype=float)
    pooled = np.concatenate([base, now])
    total, n = len(pooled), len(now)
    if n == 0 or len(base) == 0:
        return 1.0
    doubled = np.rint(2.0 * pd.Series(pooled).rank(method="average").to_numpy())
    ranks = doubled.astype(np.int64)  # 2 x mid-rank: integers
    if worse == "higher":  # P(S >= s) is P(S' <= s') for the reversed ranks 2(N+1) - r
        ranks = 2 * (total + 1) - ranks
    observed = int(ranks[len(base):].sum())
    if total > EXACT_MAX_N:
        mean = n * (total + 1)
        var = n * (total - n) / (total - 1) * float(np.var(ranks))
        if var == 0:
            return 1.0
        return NormalDist().cdf((observed - mean + 0.5) / math.sqrt(var))
    # counts[j, s]: subsets of j of the values seen so far whose doubled rank sum is s <= obs
    counts = np.zeros((n + 1, observed + 1))
    counts[0, 0] = 1.0
    for r in ranks:
        if r <= observed:
            counts[1:, r:] += counts[:-1, : observed + 1 - r]
    return float(counts[n].sum() / math.comb(total, n))


def _check_worse(worse: str) -> None:
    if worse not in ("higher", "lower"):
        raise ValueError(f"worse must be 'higher' or 'lower', got {worse!r}")


def floor(unit: str, base: Stats) -> float:
    """The practical floor: ``max(ABS_FLOOR[unit], REL_FLOOR * |mean_base|)``."""
    return max(ABS_FLOOR.get(unit, 0.0), REL_FLOOR * abs(base.mean))


def compare(scenario: str, entry: dict[str, Any] | None, values: pd.DataFrame) -> pd.DataFrame:
    """One row per invariant and checked measure of ``scenario`` (columns ``COLUMNS``)."""
    rows: list[tuple] = []
    base_metrics = (entry or {}).get("metrics", {})
    for name in INVARIANTS:
        m = BY_NAME[name]
        x = values[name].to_numpy(dtype=float) if name in values.columns else np.array([])
        now = stats(x)
        bad = int(np.count_nonzero(np.nan_to_num(x) != 0))
        status = "violated" if bad else ("ok" if name in values.columns else "missing")
        rows.append((scenario, name, "invariant", m.unit, "nonzero", 0.0, 0.0, now.n,
                     now.mean, now.std, now.n, now.mean, 0.0, status, "invariant", math.nan,
                     0.0))
    for m in MEASURES:
        if m.section == "invariants" or not m.worse:
            continue
        raw = base_metrics.get(m.name)
        if m.name not in values.columns:
            rows.append((scenario, m.name, "measure", m.unit, m.worse, math.nan, math.nan, 0,
                         math.nan, math.nan, 0, math.nan, math.nan, "missing", "", math.nan,
                         0.0))
            continue
        x = checked_values(values, m)
        x = x[np.isfinite(x)]
        now = stats(x)
        if raw is None:
            rows.append((scenario, m.name, "measure", m.unit, m.worse, math.nan, math.nan, 0,
                         now.mean, now.std, now.n, math.nan, math.nan, "new", "", math.nan,
                         0.0))
            continue
        base = Stats(_nan(raw.get("mean")), _nan(raw.get("std")) or 0.0, int(raw.get("n", 0)))
        base_values = np.asarray(raw.get("values") or [], dtype=float)
        verdict = judge(m.name, m.unit, m.worse, base, base_values, x)
        rows.append((scenario, m.name, "measure", m.unit, m.worse, base.mean, base.std,
                     base.n, now.mean, now.std, now.n, *verdict))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def judge(name: str, unit: str, worse: str, base: Stats, base_values: np.ndarray,
          x: np.ndarray) -> tuple[float, float, str, str, float, float]:
    """``(diff, tolerance, status, rule, p_value, level)`` of one measure (module rules).

    ``base_values``: the baseline's stored values (``base``: their summary as stored);
    ``x``: the current run's finite per-replication values (rounded like the baseline's
    before ranking, so equal values tie).
    """
    now = stats(x)
    if base.n == 0 or now.n == 0:
        # defined in one run only (e.g. a time that now never happens): the measures that
        # count how often it happens (activated, halted) carry the regression.
        return math.nan, math.nan, "ok", "", math.nan, 0.0
    sign = 1.0 if worse == "higher" else -1.0
    better = "lower" if worse == "higher" else "higher"
    diff = now.mean - base.mean
    tol = floor(unit, base)
    if name in SAFETY and base.mean == 0.0 and base.n >= MIN_SAFETY_N:
        status = "regressed" if np.count_nonzero(x != 0) else "ok"
        return diff, 0.0, status, "safety", math.nan, 0.0
    if unit == "probability":
        rule, level = "exact", ALPHA_EXACT
        k_base = min(max(round(base.mean * base.n), 0), base.n)
        k_now = min(max(round(float(np.sum(x))), 0), now.n)

        def tail(direction: str) -> float:
            return fisher_tail(k_now, now.n, k_base, base.n, direction)
    else:
        rule, level = "rank", ALPHA_RANK
        x_rounded = rounded(x)

        def tail(direction: str) -> float:
            return rank_sum_tail(base_values, x_rounded, direction)
    p_worse = tail(worse)
    if sign * diff > tol and p_worse <= level:
        return diff, tol, "regressed", rule, p_worse, level
    if -sign * diff > tol and (p_better := tail(better)) <= level:
        return diff, tol, "improved", rule, p_better, level
    return diff, tol, "ok", rule, p_worse, level


def failed(rows: pd.DataFrame) -> bool:
    return bool(rows["status"].isin(FAILING).any())


def false_alarm_bound(rows: pd.DataFrame) -> float:
    """Bonferroni bound on a clean re-run failing: the sum of the checks' one-sided levels."""
    return float(pd.to_numeric(rows["level"], errors="coerce").fillna(0.0).sum())


def _f(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}"


def format_diff(rows: pd.DataFrame, *, verbose: bool = False) -> str:
    """The readable diff table; only non-ok rows unless ``verbose`` (plus count lines)."""
    header = (f"{'scenario':<18} {'metric':<28} {'baseline':>11} {'now':>11} {'diff':>11} "
              f"{'tolerance':>10} {'p':>8} {'rule':<9} status")
    lines = [header, "-" * len(header)]
    shown = rows if verbose else rows[rows["status"] != "ok"]
    for r in shown.itertuples(index=False):
        mark = {"regressed": "REGRESSED", "violated": "VIOLATED", "missing": "MISSING",
                "improved": "improved", "new": "new", "ok": "ok"}[r.status]
        worse = f" ({r.worse} is worse)" if r.status in ("regressed", "improved") else ""
        lines.append(f"{r.scenario:<18} {r.metric:<28} {_f(r.base_mean):>11} {_f(r.mean):>11} "
                     f"{_f(r.diff):>11} {_f(r.tolerance):>10} {_f(r.p_value):>8} "
                     f"{r.rule or '-':<9} {mark}{worse}")
    counts = rows["status"].value_counts()
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s, 0))
    if len(shown) == 0:
        lines.append("(every invariant is 0 and every measure is within tolerance)")
    lines.append(f"{len(rows)} checks: {summary}")
    bound = false_alarm_bound(rows)
    note = "" if bound <= FAMILY_ALPHA else (
        f"; above {FAMILY_ALPHA:.0%}: fewer checks, or more replications and lower levels")
    lines.append(f"false-alarm bound (sum of the checks' one-sided levels): {bound:.1%}{note}")
    return "\n".join(lines)


def junit_xml(rows: pd.DataFrame, suite: str = "releasesim check",
              times: dict[str, float] | None = None) -> str:
    """JUnit XML: one testsuite per scenario, one testcase per invariant/measure.

    ``times`` maps a scenario to the seconds it took (``releasesim check``: running its
    replications plus comparing them with the baseline); that is the testsuite's ``time``,
    and each of its testcases gets an equal share, since every case is judged from the same
    run. The ``testsuites`` element carries the total. Without ``times``, every time is 0.
    """
    times = times or {}
    root = ET.Element("testsuites")
    total = 0.0
    for scenario, group in rows.groupby("scenario", sort=False):
        failures = int(group["status"].isin(FAILING).sum())
        suite_s = max(0.0, float(times.get(str(scenario), 0.0)))
        total += suite_s
        case_s = suite_s / len(group)
        ts = ET.SubElement(root, "testsuite", name=f"{suite}: {scenario}",
                           tests=str(len(group)), failures=str(failures), errors="0",
                           skipped="0", time=f"{suite_s:.6f}")
        for r in group.itertuples(index=False):
            case = ET.SubElement(ts, "testcase", classname=f"releasesim.check.{scenario}",
                                 name=f"{r.kind}:{r.metric}", time=f"{case_s:.6f}")
            detail = (f"baseline mean {_f(r.base_mean)} (std {_f(r.base_std)}, n {r.base_n}); "
                      f"now {_f(r.mean)} (std {_f(r.std)}, n {r.n}); diff {_f(r.diff)}, "
                      f"tolerance {_f(r.tolerance)}; rule {r.rule or '-'}, p {_f(r.p_value)}, "
                      f"level {_f(r.level)}; {r.worse} is worse")
            if r.status in FAILING:
                message = (f"{r.metric} {r.status}" if r.kind == "measure"
                           else f"invariant {r.metric} non-zero (mean {_f(r.mean)})")
                failure = ET.SubElement(case, "failure", message=message, type=r.status)
                failure.text = detail
            else:
                out = ET.SubElement(case, "system-out")
                out.text = f"{r.status}: {detail}"
    root.set("time", f"{total:.6f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


__all__ = [
    "ABS_FLOOR",
    "ALPHA_EXACT",
    "ALPHA_RANK",
    "BaselineError",
    "COLUMNS",
    "EXACT_MAX_N",
    "FAMILY_ALPHA",
    "FORMAT",
    "MIN_SAFETY_N",
    "REL_FLOOR",
    "RULES",
    "RULE_TEXT",
    "SAFETY",
    "compare",
    "failed",
    "false_alarm_bound",
    "fisher_tail",
    "floor",
    "format_diff",
    "judge",
    "junit_xml",
    "make_baseline",
    "rank_sum_tail",
    "read_baseline",
    "rounded",
    "checked_values",
    "scenario_entry",
    "stats",
    "write_baseline",
]
