"""Per-replication consensus outcomes in stake: the summary columns and how each is computed.

``CONSENSUS_METRICS`` documents the columns (appended to ``sim.summary.METRICS``);
``consensus_row(world)`` computes them for a finished World from the fleet's *recorded*
down intervals and the validators' stakes (``sim.consensus.liveness``): validator ``i``
runs node ``i`` for the first ``fleet.validators`` validators, and a validator outside the
simulated fleet counts as always up. Every share of voting power is of the chain's total
voting power (``stake_in_fleet`` says how much of it the fleet holds). The window is
``[0, horizon_s]``: a node still down when the run ends stays down until the horizon
(the horizon cut the run, or nothing is left that could bring it back), so a stall still
going on then is censored at the horizon (``stall_open_at_end``).

The liveness rule: blocks are produced while the voting power that is up -- and, in
``halt_at_height`` mode past the upgrade height, running the release, which the recorded
``halt`` intervals encode -- is more than ``consensus.liveness_threshold`` (2/3) of the
total; otherwise consensus is stalled.

Imports ``numpy`` and ``sim.consensus``; must not import pandas or ``reports``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from releasesim.sim.consensus import liveness, threshold_fraction, voting_power
from releasesim.sim.recorder import Column

if TYPE_CHECKING:
    from releasesim.sim.world import World

NAN = math.nan

CONSENSUS_METRICS: tuple[Column, ...] = (
    Column("validators_in_fleet", "count",
           "Validators running one of the fleet's nodes (`fleet.validators`); any other "
           "validator counts as always up."),
    Column("stake_in_fleet", "fraction",
           "Share of the chain's voting power held by validators in the fleet."),
    Column("consensus_stalled", "bool",
           "At some instant the voting power up (and, past an upgrade height, on the "
           "release) was not more than `consensus.liveness_threshold` of the total: no "
           "blocks."),
    Column("stall_count", "count", "Separate stalls (maximal stalled intervals)."),
    Column("stall_total_s", "s",
           "Total stalled time up to the horizon; 0 without a stall (a lower bound when "
           "`stall_open_at_end`)."),
    Column("stall_longest_s", "s",
           "The longest stall; 0 without a stall (a lower bound when it was still going "
           "on at the end)."),
    Column("stall_longest_start_s", "s",
           "When the longest stall began (since the start of the replication). NaN "
           "without a stall."),
    Column("stall_first_s", "s",
           "When the first stall began (since the start of the replication). NaN without "
           "a stall."),
    Column("stall_recover_s", "s",
           "The first stall's start -> the end of the last stall: consensus recovered for "
           "good. NaN without a stall, or when still stalled at the end "
           "(`stall_open_at_end`)."),
    Column("stall_open_at_end", "bool",
           "Consensus was still stalled at the horizon (its stall times are lower bounds, "
           "censored at the horizon)."),
    Column("peak_down_stake", "fraction",
           "Largest share of the chain's voting power down at the same instant (from the "
           "recorded down intervals)."),
    Column("down_stake_s", "s",
           "Integral over time of the share of voting power down (e.g. a third of the "
           "power down for 60 s adds 20 s)."),
    Column("adopted_stake", "fraction",
           "Share of the voting power whose node runs the release at the end. NaN if not "
           "activated."),
    Column("lagging_stake", "fraction",
           "Share of the voting power whose node does not run the release `sla_s` after "
           "activation (validators outside the fleet count as not lagging); NaN exactly "
           "when `lagging_fraction` is."),
    Column("upgrade_height_s", "s",
           "halt_at_height: activation -> the upgrade height, where every node not on the "
           "release stopped. NaN in rolling mode or if not activated."),
)


def consensus_row(
    world: World, lagging_defined: bool, finals: np.ndarray | None
) -> dict[str, float | int | bool]:
    """The ``CONSENSUS_METRICS`` of a finished World.

    ``lagging_defined``: whether ``lagging_fraction`` is defined (activated, and the run
    reached activation + ``sla_s`` or finished), so both lagging shares agree; ``finals``:
    ``fleet.final_builds()`` when the release activated (computed once by the caller).
    """
    fleet = world.fleet
    cfg = world.scenario.consensus
    power_all = voting_power(world.validators.stakes)
    total = int(power_all.sum())
    k = fleet.validator_nodes
    power = np.zeros(fleet.n, dtype=np.int64)
    power[:k] = power_all[:k]
    in_fleet = int(power.sum())
    live = liveness(
        np.frombuffer(fleet.down_starts, dtype=float) if fleet.down_starts else [],
        np.frombuffer(fleet.down_ends, dtype=float) if fleet.down_ends else [],
        np.frombuffer(fleet.down_nodes, dtype=np.int32) if fleet.down_nodes else [],
        np.frombuffer(fleet.down_open, dtype=np.uint8).astype(bool) if fleet.down_open else [],
        power, total, threshold_fraction(float(cfg.liveness_threshold)), float(world.horizon_s),
    )
    recover = (live.stall_last_end_s - live.stall_first_s
               if live.stalled and not live.stall_open_at_end else NAN)
    row: dict[str, float | int | bool] = {
        "validators_in_fleet": int(k),
        "stake_in_fleet": in_fleet / total if total else NAN,
        "consensus_stalled": bool(live.stalled),
        "stall_count": int(live.stall_count),
        "stall_total_s": float(live.stall_total_s),
        "stall_longest_s": float(live.stall_longest_s),
        "stall_longest_start_s": float(live.stall_longest_start_s),
        "stall_first_s": float(live.stall_first_s),
        "stall_recover_s": float(recover),
        "stall_open_at_end": bool(live.stall_open_at_end),
        "peak_down_stake": float(live.peak_down_stake),
        "down_stake_s": float(live.down_stake_s),
    }
    new = world.rollout.by_kind("new")
    if new is None or finals is None or not total:
        row["adopted_stake"] = NAN
        row["lagging_stake"] = NAN
        row["upgrade_height_s"] = NAN
        return row
    share = power.astype(float) / total
    booted = fleet.booted_new_s
    running = (finals == "new") & ~np.isnan(booted)
    row["adopted_stake"] = float(np.sum(share[running]))
    if lagging_defined:
        late = ~(booted <= new.activation_s + float(world.scenario.sla_s))  # NaN: late
        row["lagging_stake"] = float(np.sum(share[late]))
    else:
        row["lagging_stake"] = NAN
    row["upgrade_height_s"] = new.upgrade_s - new.activation_s
    return row


__all__ = ["CONSENSUS_METRICS", "consensus_row"]
