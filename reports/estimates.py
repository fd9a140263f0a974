"""Estimates and 95% intervals of the measures: one method per measure, one table for all.

``measure_table(values)`` turns the per-replication values of ``releasesim.reports.measures`` into
one row per measure: the estimate, its 95% interval, ``n`` (replications where the
measure is defined, or, for a censored time, replications in its estimate), ``N`` (all
replications), the condition it is defined under (``given``), how many replications were
censored, and the method (``releasesim.reports.measures.METHODS``). The terminal summary, the
Markdown and HTML reports, ``report.json``, ``--json`` and the sweep all read this table,
so a measure shows the same interval everywhere.

``qualifier(row)`` is the wording every output uses for a figure that is not over every
replication ("given activated, n = 6 of 20"); ``conditional_warnings(table)`` lists the
headline figures that are conditional or censored, for the warning a report opens with,
and says when validators outside the fleet hold part of the voting power (they count as
always up, so every share of voting power is of the chain's total).

Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from releasesim.reports.intervals import bootstrap, t_interval, wilson
from releasesim.reports.measures import (
    BY_NAME,
    FLEET_NODES,
    HEADLINE,
    MEASURES,
    ORDERED,
    VALIDATORS_EFFECTIVE,
    Measure,
)
from releasesim.reports.replications import durations
from releasesim.reports.survival import censored_quantile

NAN = math.nan
TABLE_COLUMNS = ("measure", "section", "unit", "estimate", "value", "ci_low", "ci_high",
                 "n", "N", "given", "censored", "follow_up", "method")


def event_interval(x: np.ndarray) -> tuple[float, float, float, int]:
    """Share of replications where it happened; Wilson 95% interval over replications."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return NAN, NAN, NAN, 0
    p, low, high = wilson(float(np.sum(x)), len(x))
    return p, low, high, len(x)


def fraction_interval(
    x: np.ndarray, trials: np.ndarray | None = None
) -> tuple[float, float, float, int]:
    """Mean of per-replication fleet fractions and its 95% interval.

    A Student t interval over the replication values (their spread is what varies from
    one future to the next), widened to at least the Wilson interval of the node-trials
    of all replications pooled (``sum(x_i * m_i)`` of ``sum(m_i)``, ``m_i`` = nodes), so
    it cannot collapse to zero width when every replication saw the same value; clipped
    to [0, 1]. Without ``trials`` it is the t interval alone.
    """
    x = np.asarray(x, dtype=float)
    keep = np.isfinite(x)
    if trials is not None:
        m = np.asarray(trials, dtype=float)
        keep &= np.isfinite(m) & (m > 0)
    values = x[keep]
    n = len(values)
    if n == 0:
        return NAN, NAN, NAN, 0
    mean, low, high, _ = t_interval(values)
    if trials is not None:
        nodes = m[keep]
        total = float(nodes.sum())
        _, pooled_low, pooled_high = wilson(float(np.sum(values * nodes)), int(round(total)))
        low = pooled_low if not math.isfinite(low) else min(low, pooled_low)
        high = pooled_high if not math.isfinite(high) else max(high, pooled_high)
    return mean, max(0.0, low), min(1.0, high), n


def stake_interval(
    x: np.ndarray, effective: np.ndarray | None = None, in_fleet: np.ndarray | None = None
) -> tuple[float, float, float, int]:
    """Mean of per-replication shares of voting power and its 95% interval.

    A Student t interval over the replication values, widened to at least the Wilson
    interval of the validators' Kish effective number pooled over replications: per
    replication ``n_i = (sum s)^2 / sum s^2`` over the fleet's validators (``effective``),
    which is the number of equal-stake validators whose share has the same binomial
    variance, ``p (1 - p) / n_i``, as the stake-weighted share of independent validators.
    The pooled share of the *fleet's* power, ``sum(n_i x_i / f_i) / sum(n_i)`` with
    ``f_i`` = ``in_fleet`` (the fleet's share of the chain's power), gets the Wilson
    interval with ``sum(n_i)`` trials, scaled back by the pooled ``f``. Pooling node-trials
    instead (``fraction_interval``) would count a whale validator as one trial among
    thousands of full nodes and give a far too narrow interval. Clipped to [0, 1].
    """
    x = np.asarray(x, dtype=float)
    keep = np.isfinite(x)
    values = x[keep]
    n = len(values)
    if n == 0:
        return NAN, NAN, NAN, 0
    mean, low, high, _ = t_interval(values)
    if effective is not None:
        m = np.asarray(effective, dtype=float)[keep]
        f = (np.ones(n) if in_fleet is None
             else np.asarray(in_fleet, dtype=float)[keep])
        use = np.isfinite(m) & (m > 0) & np.isfinite(f) & (f > 0)
        trials = float(m[use].sum())
        if trials > 0:
            pooled_f = float(np.sum(m[use] * f[use])) / trials
            share = float(np.sum(m[use] * values[use] / f[use])) / trials
            _, w_low, w_high = wilson(share * trials, trials)  # type: ignore[arg-type]
            w_low, w_high = w_low * pooled_f, w_high * pooled_f
            low = w_low if not math.isfinite(low) else min(low, w_low)
            high = w_high if not math.isfinite(high) else max(high, w_high)
    return mean, max(0.0, low), min(1.0, high), n


def _lower_bounds(measure: Measure, values: pd.DataFrame) -> np.ndarray:
    """Per replication: is the value only a lower bound (``Measure.lower_bound_when``)?"""
    flag = measure.lower_bound_when
    if not flag or flag not in values.columns:
        return np.zeros(len(values), dtype=bool)
    return values[flag].to_numpy(dtype=float) > 0.5


def estimate(measure: Measure, values: pd.DataFrame) -> tuple[float, float, float, int, int]:
    """``(estimate, low, high, n, censored)`` of one measure over ``values``' replications.

    ``censored``: for ``km``, replications not seen (censored); for a ``mean`` with
    ``lower_bound_when``, replications whose value is only a lower bound -- the interval
    then has no finite upper bound (``inf``, read "> follow-up").
    """
    x = values[measure.name].to_numpy(dtype=float)
    if measure.method == "event":
        return (*event_interval(x), 0)
    if measure.method == "fraction":
        trials = values[FLEET_NODES].to_numpy(dtype=float) if FLEET_NODES in values else None
        return (*fraction_interval(x, trials), 0)
    if measure.method == "stake":
        effective = (values[VALIDATORS_EFFECTIVE].to_numpy(dtype=float)
                     if VALIDATORS_EFFECTIVE in values else None)
        in_fleet = (values["stake_in_fleet"].to_numpy(dtype=float)
                    if "stake_in_fleet" in values else None)
        return (*stake_interval(x, effective, in_fleet), 0)
    if measure.method == "km":
        times, observed = durations(values, measure.name)
        defined = ~np.isnan(times)
        est, low, high, n = censored_quantile(times[defined], observed[defined], 0.5)
        return est, low, high, n, int(np.count_nonzero(defined & ~observed))
    if measure.method == "median":
        return (*bootstrap(x), 0)
    mean, low, high, n = t_interval(x)
    if measure.unit == "s" and math.isfinite(low):
        low = max(0.0, low)  # a duration's mean is not negative
    lower = _lower_bounds(measure, values) & np.isfinite(x)
    if lower.any():
        high = math.inf
    return mean, low, high, n, int(np.count_nonzero(lower))


def follow_up(measure: Measure, values: pd.DataFrame) -> float:
    """Longest finite censoring time of a ``km`` measure, or the largest value that is only
    a lower bound (``lower_bound_when``); NaN when there is none."""
    if measure.lower_bound_when and measure.name in values.columns:
        x = values[measure.name].to_numpy(dtype=float)
        lower = x[_lower_bounds(measure, values) & np.isfinite(x)]
        return float(lower.max()) if len(lower) else NAN
    if measure.method != "km":
        return NAN
    times, observed = durations(values, measure.name)
    cut = times[~observed & np.isfinite(times)]
    return float(cut.max()) if len(cut) else NAN


def measure_table(values: pd.DataFrame, names: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per measure (columns ``TABLE_COLUMNS``), in ``MEASURES`` order."""
    wanted = set(names) if names is not None else None
    rows = []
    total = len(values)
    for m in MEASURES:
        if m.name not in values.columns or (wanted is not None and m.name not in wanted):
            continue
        est, low, high, n, censored = estimate(m, values)
        rows.append((m.name, m.section, m.unit, m.estimate, est, low, high, n, total,
                     m.given, censored, follow_up(m, values), m.method))
    return _ordered(pd.DataFrame(rows, columns=list(TABLE_COLUMNS)))


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Running maximum of estimate and bounds along each ``ORDERED`` group of measures."""
    for group in ORDERED:
        index = [table.index[table["measure"] == name][0] for name in group
                 if (table["measure"] == name).any()]
        for column in ("value", "ci_low", "ci_high"):
            values = table.loc[index, column].to_numpy(dtype=float)
            filled = np.where(np.isnan(values), -np.inf, values)
            running = np.maximum.accumulate(filled)
            table.loc[index, column] = np.where(np.isnan(values), np.nan, running)
    return table


def qualifier(row: pd.Series | tuple) -> str:
    """How a figure is qualified: ``""`` when it is over every replication, else e.g.
    ``given activated, n = 6 of 20`` and/or ``3 of 6 censored (horizon or never)`` (a
    ``km`` time) or ``1 of 20 still stalled at the end (lower bounds)`` (a stall duration)."""
    get = row.get if isinstance(row, pd.Series) else row._asdict().get  # type: ignore[union-attr]
    n, total, given, censored = int(get("n")), int(get("N")), get("given"), int(get("censored"))
    parts = []
    if given:
        parts.append(f"given {given}, n = {n} of {total}")
    elif n < total:
        parts.append(f"defined in {n} of {total}")
    name = get("measure") or getattr(row, "name", None)
    origin = BY_NAME[name].origin if name in BY_NAME else ""
    if censored and get("method") not in ("km", None):  # a mean of lower bounds
        parts.append(f"{censored} of {n} still stalled at the end (lower bounds)")
    elif censored and origin == "stall":
        parts.append(f"{censored} of {n} censored (still stalled at the end)")
    elif censored:
        parts.append(f"{censored} of {n} censored (horizon or never)")
    return "; ".join(parts)


def count_label(row: pd.Series | tuple) -> str:
    """The ``n/N`` cell: ``20/20``, or the qualifier when the figure is not over all."""
    get = row.get if isinstance(row, pd.Series) else row._asdict().get  # type: ignore[union-attr]
    return qualifier(row) or f"{int(get('n'))}/{int(get('N'))}"


def conditional_warnings(table: pd.DataFrame, names: Iterable[str] = HEADLINE) -> list[str]:
    """One sentence per headline figure that is not over every replication, or censored;
    then ``stake_warning`` when the table says part of the voting power is not simulated."""
    rows = table.set_index("measure")
    out = []
    for name in names:
        if name not in rows.index:
            continue
        row = rows.loc[name]
        if int(row["N"]) == 0:
            continue
        if row["given"] and int(row["n"]) < int(row["N"]):
            out.append(f"`{name}` is conditional: given {row['given']}, n = {int(row['n'])} "
                       f"of {int(row['N'])} replications; read it with P({row['given']}).")
        elif int(row["censored"]) and row["method"] != "km":
            out.append(f"`{name}` is a lower bound: consensus was still stalled at the end "
                       f"of {int(row['censored'])} of {int(row['n'])} replications (no "
                       "finite upper bound; it reads '>').")
        elif int(row["censored"]):
            out.append(f"`{name}` is a censored time: {int(row['censored'])} of "
                       f"{int(row['n'])} replications did not see it within the horizon "
                       "(Kaplan-Meier median; it reads '>' when not reached).")
    return out + stake_warning(table)


def stake_warning(table: pd.DataFrame) -> list[str]:
    """``["k validators holding x% of the voting power run in the fleet; ..."]`` when the
    fleet's validators hold less than all of it (``stake_in_fleet`` < 1), else ``[]``."""
    rows = table.set_index("measure")
    if "stake_in_fleet" not in rows.index:
        return []
    share = float(rows.loc["stake_in_fleet", "value"])
    if not math.isfinite(share) or share >= 1.0 - 1e-9:
        return []
    count = (float(rows.loc["validators_in_fleet", "value"])
             if "validators_in_fleet" in rows.index else NAN)
    who = (f"{count:.0f} validators" if math.isfinite(count) and count == round(count)
           else f"{count:.1f} validators on average" if math.isfinite(count)
           else "the validators")
    return [f"Only {who} holding {100 * share:.1f}% of the voting power run in the fleet; "
            f"the others ({100 * (1 - share):.1f}%) count as always up, never lagging and "
            "never affected, so every share of voting power here is of the chain's total "
            "and the stall figures assume the rest of the chain stays live."]


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """The headline rows of a measure table, in ``HEADLINE`` order."""
    rows = table.set_index("measure")
    present = [name for name in HEADLINE if name in rows.index]
    return rows.loc[present].reset_index()


def table_records(table: pd.DataFrame) -> list[dict[str, object]]:
    """The table as JSON-ready records (NaN -> None, inf -> "inf"), with the qualifier."""
    records = []
    for row in table.itertuples(index=False):
        record: dict[str, object] = {}
        for key, value in row._asdict().items():
            if isinstance(value, float | np.floating):
                value = float(value)
                value = None if math.isnan(value) else ("inf" if math.isinf(value) else value)
            elif isinstance(value, np.integer):
                value = int(value)
            record[key] = value
        record["qualifier"] = qualifier(row)
        record["definition"] = BY_NAME[row.measure].definition
        records.append(record)
    return records


__all__ = [
    "TABLE_COLUMNS",
    "conditional_warnings",
    "count_label",
    "estimate",
    "event_interval",
    "follow_up",
    "fraction_interval",
    "headline",
    "measure_table",
    "qualifier",
    "stake_interval",
    "stake_warning",
    "table_records",
]
