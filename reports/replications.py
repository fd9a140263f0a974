"""Each measure's value per replication, from the result tables.

``per_replication(summary, nodes, events)`` computes one value per measure and
replication (NaN where a measure is undefined, or not recorded: tables written before
stake existed), plus, for the ``km`` measures, the censoring time of each replication
where the event was not seen (``<name>_censored_at``: ``horizon - origin`` when the
horizon cut the run, ``inf`` when the run ended with the event impossible; for the
``stall`` origin ``horizon - first stall`` when still stalled at the end: consensus is
judged up to the horizon, a node still down at the end staying down until then) and the time
restricted to the horizon (``<name>_by_horizon``: the time if seen, else ``horizon -
origin``, "not by the horizon"; what the CI check compares), the fleet size
(``fleet_nodes``) for pooled node-trials and the validators' Kish effective number
(``validators_effective``) for pooled stake.

The measures themselves (names, methods, ``given``, ``origin``) are defined in
``releasesim.reports.measures``. Reads the result tables only (columns of
``sim.summary``/``sim.recorder``); must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from releasesim.reports.measures import (
    CENSORED_SUFFIX,
    FLEET_NODES,
    HALT_STAKE,
    MEASURES,
    ONE_THIRD,
    RECORDED_STAKE,
    RESTRICTED_SUFFIX,
    STAKE_FROM_NODES,
    VALIDATORS_EFFECTIVE,
)

NAN = math.nan


# --------------------------------------------------------------------------- helpers


def activation_times(summary: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Absolute activation time (s since replication start) per replication, NaN if none.

    The release's ``build`` event time plus ``time_to_activation_s`` (build -> activation).
    """
    return build_times(summary, events) + summary.set_index("replication")[
        "time_to_activation_s"
    ].astype(float).reindex(summary["replication"].to_numpy())


def build_times(summary: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Absolute time of the release's build per replication (NaN if it never happened)."""
    reps = summary["replication"].to_numpy()
    build = pd.Series(NAN, index=reps, dtype=float)
    if len(events):
        builds = events[events["kind"] == "build"].groupby("replication")["time_s"].min()
        build = build.fillna(builds.reindex(reps))
    return build


def halt_times(summary: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Absolute halt time per replication (activation + ``halt_time_s``), NaN if none."""
    reps = summary["replication"].to_numpy()
    halt = summary.set_index("replication")["halt_time_s"].astype(float).reindex(reps)
    return activation_times(summary, events) + halt


def _node_groups(nodes: pd.DataFrame, reps: np.ndarray) -> dict[int, pd.DataFrame]:
    groups = {int(r): g for r, g in nodes.groupby("replication", sort=True)}
    empty = nodes.iloc[0:0]
    return {int(r): groups.get(int(r), empty) for r in reps}


def _bool_column(summary: pd.DataFrame, name: str) -> pd.Series:
    """A boolean summary column as float (1.0 / 0.0, NaN where undefined)."""
    column = summary[name]
    if column.dtype == object:
        column = column.map(lambda v: NAN if v is None else float(bool(v)))
    return column.astype(float)


def _horizon_cut(summary: pd.DataFrame) -> np.ndarray:
    """Per replication: did the horizon stop work still going on?

    Tables written before the ``horizon_cut`` column existed: assume it did (a missing
    event is then censored at the run's end, never taken as impossible).
    """
    if "horizon_cut" in summary.columns:
        return _bool_column(summary, "horizon_cut").fillna(1.0).to_numpy() > 0.5
    return np.ones(len(summary), dtype=bool)


# --------------------------------------------------------------------------- tables


def per_replication(
    summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame
) -> pd.DataFrame:
    """One row per replication, one column per measure (NaN where undefined).

    Also ``<name>_censored_at`` and ``<name>_by_horizon`` for each ``km`` measure (module
    docstring), ``fleet_nodes`` (nodes in the replication) and ``validators_effective``.
    """
    reps = summary["replication"].to_numpy()
    out = pd.DataFrame(index=pd.Index(reps, name="replication"))
    s = summary.set_index("replication")
    for m in MEASURES:
        if m.name in s.columns:
            if m.unit == "probability":
                out[m.name] = _bool_column(s, m.name).to_numpy()
            else:
                out[m.name] = s[m.name].astype(float).to_numpy()
        elif m.name in RECORDED_STAKE:
            out[m.name] = NAN  # a run directory written before stake was recorded
    build = build_times(summary, events).reindex(reps).to_numpy()
    act = activation_times(summary, events).reindex(reps).to_numpy()
    halt = halt_times(summary, events).reindex(reps).to_numpy()
    groups = _node_groups(nodes, reps)
    in_fleet = (s["stake_in_fleet"].astype(float).reindex(reps).to_numpy()
                if "stake_in_fleet" in s.columns else np.full(len(reps), NAN))
    derived: dict[str, list[float]] = {
        k: [] for k in ("failed_startup_fraction", "stuck_old_fraction",
                        "malicious_running_fraction", "time_to_recover_s",
                        "exposure_at_halt_fraction", "failed_after_halt_fraction",
                        *STAKE_FROM_NODES, FLEET_NODES, VALIDATORS_EFFECTIVE)
    }
    for i, rep in enumerate(reps):
        g = groups[int(rep)]
        n = len(g)
        derived[FLEET_NODES].append(float(n) if n else NAN)
        if n == 0:
            for name, values in derived.items():
                if name != FLEET_NODES:
                    values.append(NAN)
            continue
        failed = g["failed_startup"].astype(bool).to_numpy()
        final = g["final_build"].astype(str).to_numpy()
        installed = g["installed_s"].to_numpy(dtype=float)
        rolled = g["rolled_back_s"].to_numpy(dtype=float)
        late = failed & (rolled > halt[i])
        affected = {
            "failed_startup": failed, "stuck_old": final == "old",
            "malicious_running": final == "malicious",
            "exposed": np.isfinite(installed), "rolled_back": np.isfinite(rolled),
            "malicious_installed": (g["installed_malicious"].astype(bool).to_numpy()
                                    if "installed_malicious" in g.columns else None),
            "exposure_at_halt": installed <= halt[i], "failed_after_halt": late,
        }
        for name in ("failed_startup", "stuck_old", "malicious_running"):
            derived[f"{name}_fraction"].append(float(affected[name].mean()))
        if failed.any() and math.isfinite(act[i]):
            back = installed[failed] + g["down_s"].to_numpy(dtype=float)[failed]
            derived["time_to_recover_s"].append(float(np.nanmax(back)) - act[i])
        else:
            derived["time_to_recover_s"].append(NAN)
        for name in ("exposure_at_halt", "failed_after_halt"):
            value = float(np.mean(affected[name])) if math.isfinite(halt[i]) else NAN
            derived[f"{name}_fraction"].append(value)
        share, effective = _stake_shares(g, in_fleet[i])
        derived[VALIDATORS_EFFECTIVE].append(effective)
        for name in STAKE_FROM_NODES:
            mask = affected[name.removesuffix("_stake")]
            undefined = mask is None or (name in HALT_STAKE and not math.isfinite(halt[i]))
            derived[name].append(NAN if share is None or undefined
                                 else float(np.sum(share[mask])))
    for name, values in derived.items():
        out[name] = values
    if "peak_down_stake" in out.columns:
        peak = out["peak_down_stake"]
        out["down_over_third"] = np.where(peak.isna(), NAN, (peak >= ONE_THIRD - 1e-12) * 1.0)
    ordered = [m.name for m in MEASURES if m.name in out.columns]
    censor = _censoring(summary, out, build, act)
    return pd.concat([out[ordered], censor, out[[FLEET_NODES, VALIDATORS_EFFECTIVE]]], axis=1)


def _stake_shares(nodes: pd.DataFrame, stake_in_fleet: float) -> tuple[np.ndarray | None, float]:
    """``(share of the chain's total voting power per node, Kish effective validators)``.

    The total is the fleet's stake divided by ``stake_in_fleet`` (validators outside the
    fleet hold the rest). ``(None, NaN)`` when the tables do not record stake; a fleet
    holding no stake gives shares of 0 and no effective validator.
    """
    if "stake" not in nodes.columns or not math.isfinite(stake_in_fleet):
        return None, NAN
    stake = nodes["stake"].to_numpy(dtype=float)
    fleet = float(stake.sum())
    if fleet <= 0.0 and stake_in_fleet == 0.0:
        return np.zeros(len(stake)), 0.0
    if fleet <= 0.0 or stake_in_fleet <= 0.0:
        return None, NAN
    return stake * stake_in_fleet / fleet, fleet * fleet / float(np.sum(stake * stake))


def _censoring(
    summary: pd.DataFrame, out: pd.DataFrame, build: np.ndarray, act: np.ndarray
) -> pd.DataFrame:
    """``<name>_censored_at`` of each ``km`` measure (NaN where observed or undefined)."""
    cut = _horizon_cut(summary)
    end = (summary["sim_end_s"].to_numpy(dtype=float) if "sim_end_s" in summary.columns
           else np.full(len(summary), np.inf))
    # tables from before the horizon_s column: the longest run is the best guess
    horizon = (summary["horizon_s"].to_numpy(dtype=float) if "horizon_s" in summary.columns
               else np.full(len(summary), np.nanmax(end) if len(end) else np.inf))
    activated = (out["activated"].to_numpy() == 1.0 if "activated" in out.columns
                 else np.isfinite(act))
    columns: dict[str, np.ndarray] = {}
    for m in MEASURES:
        if m.method != "km" or m.name not in out.columns:
            continue
        seen = np.isfinite(out[m.name].to_numpy(dtype=float))
        if m.origin == "stall":
            # judged up to the horizon (a node still down at the end stays down until
            # then): a stall still going on is censored there, never "never"
            origin = (summary["stall_first_s"].to_numpy(dtype=float)
                      if "stall_first_s" in summary.columns else np.full(len(end), NAN))
            defined = out["consensus_stalled"].to_numpy() == 1.0
            at = np.maximum(np.where(np.isfinite(horizon), horizon, end) - origin, 0.0)
        else:
            if m.origin == "activation":
                origin, defined = act, activated
            else:
                # no build yet: the horizon came before it (censored at 0)
                origin = np.where(np.isfinite(build), build, end)
                defined = np.ones(len(end), bool)
            at = np.where(cut, np.maximum(end - origin, 0.0), np.inf)
        columns[m.name + CENSORED_SUFFIX] = np.where(seen | ~defined, NAN, at)
        window = np.maximum(horizon - origin, 0.0)
        restricted = np.where(seen, out[m.name].to_numpy(dtype=float), window)
        columns[m.name + RESTRICTED_SUFFIX] = np.where(defined, restricted, NAN)
    return pd.DataFrame(columns, index=out.index)


def durations(values: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(durations, observed)`` of a ``km`` measure: event time, else its censoring time."""
    seen = values[name].to_numpy(dtype=float)
    censor_column = name + CENSORED_SUFFIX
    censored = (values[censor_column].to_numpy(dtype=float) if censor_column in values.columns
                else np.full(len(seen), NAN))
    observed = np.isfinite(seen)
    return np.where(observed, seen, censored), observed


__all__ = ["activation_times", "build_times", "durations", "halt_times", "per_replication"]
