"""How the reports write numbers: percentages, times in a readable unit, counts.

``format_estimate`` is ``format_value`` plus the one rule for censored times: an
estimate or bound that was not reached within the follow-up reads "> follow-up" (or
"never" when no replication was cut by the horizon). Pure Python; imports nothing from
the project.
"""

from __future__ import annotations

import math


def time_unit(max_s: float) -> tuple[float, str]:
    """``(divisor, unit)`` that keeps a time axis readable: s, min or h."""
    if not math.isfinite(max_s) or max_s < 300:
        return 1.0, "s"
    if max_s < 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def format_value(value: float, unit: str) -> str:
    """A value for the report tables: percentages, times with a readable unit, counts."""
    if value is None or math.isnan(float(value)):
        return "-"
    value = float(value)
    if math.isinf(value):
        return "never" if value > 0 else "-inf"
    if unit in ("fraction", "probability"):
        percent = 100 * value
        return f"{percent:.2g}%" if 0 < abs(percent) < 0.1 else f"{percent:.1f}%"
    if unit == "s":
        div, label = time_unit(abs(value))
        return f"{value:,.0f} s" if label == "s" else f"{value / div:,.1f} {label}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_estimate(value: float, unit: str, follow_up: float = math.nan) -> str:
    """Like ``format_value``, but an unreached censored quantile reads "> follow-up"."""
    if isinstance(value, float) and math.isinf(value) and value > 0 and unit == "s":
        return f"> {format_value(follow_up, unit)}" if math.isfinite(follow_up) else "never"
    return format_value(value, unit)


__all__ = ["format_estimate", "format_value", "time_unit"]
