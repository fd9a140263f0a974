"""The scenario's schema: the resolved scenario's dataclasses and the knob table.

``KNOBS`` (key path, type, default, unit, range, one-line description) is the single
source of the defaults, the validation (``sim.scenario``), the overrides
(``sim.overrides``), the JSON Schema and the generated knob reference
(``sim.scenario_docs``). The resolved scenario is a tree of frozen dataclasses
(``Scenario`` and one class per section) whose fields are exactly the knobs of the table.
The value helpers here (``is_int``, ``is_number``, ``toml_value``, ``plain``, ``got``,
``range_text``, ``expected``) say how a knob's value and range are written in messages,
the schema and the docs.

Imports the standard library and ``sim.distributions`` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from releasesim.sim.distributions import (
    Distribution,
    Exponential,
    Fixed,
    LogNormal,
    Pareto,
)
from releasesim.sim.sections import (
    Adversary,
    CompromiseGroup,
    Consensus,
    Fleet,
    Governance,
    Mirrors,
    Release,
    Rollout,
    Signers,
    ThresholdChange,
)

Kind = Literal[
    "int", "float", "bool", "str", "enum", "dist", "fractions", "schedule", "probs", "groups",
    "weights",
]


# --------------------------------------------------------------------------------------
# The resolved scenario
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """A fully resolved, validated scenario. Build it with ``load_scenario`` & co."""

    name: str
    description: str
    replications: int
    seed: int
    horizon_s: float
    sla_s: float
    epoch_s: float
    signers: Signers
    governance: Governance
    release: Release
    adversary: Adversary
    mirrors: Mirrors
    fleet: Fleet
    rollout: Rollout
    consensus: Consensus

    def to_dict(self) -> dict[str, Any]:
        """Every knob, resolved, as plain JSON/TOML values (``scenario_from_dict`` reads it)."""
        out: dict[str, Any] = {}
        for knob in KNOBS:
            value = self
            for part in knob.key.split("."):
                value = getattr(value, part)
            target = out if knob.section is None else out.setdefault(knob.section, {})
            target[knob.name] = plain(value)
        return out


# --------------------------------------------------------------------------------------
# The knob table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Knob:
    """One scenario knob: the single source of its default, checks, schema and docs."""

    key: str
    kind: Kind
    default: Any
    unit: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    max_key: str | None = None  # the upper bound is another knob's value
    choices: tuple[str, ...] = ()
    positive: bool = False  # dist: every draw must be > 0
    bytes_each: float = 0.0
    """Memory a replication needs per unit of this size knob (for the upper bound's message)."""

    @property
    def section(self) -> str | None:
        return self.key.split(".")[0] if "." in self.key else None

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]


MAX_NODES = 2_000_000
"""Upper bound of ``fleet.nodes``: about 4 GB for one replication at ``NODE_BYTES`` each."""
NODE_BYTES = 2048.0
"""A conservative bound on a worker's peak memory per node (``benchmarks/bench_scale.py``
measures about 1.2-1.4 KB at 100k nodes)."""
MAX_COMPROMISE_GROUPS = 16
"""Upper bound of ``signers.compromise_groups``: the exact weights enumerate 2^G outcomes."""
MAX_REPLICATIONS = 1_000_000
"""Upper bound of ``replications`` (one summary row each, kept in memory by the runner)."""
MAX_SEED = 2**63 - 1
"""Upper bound of ``seed``: the run tables store it as a 64-bit integer."""
MIN_SECONDS = 1e-3
"""Lower bound of the time knobs that must be > 0 (``epoch_s``, ``horizon_s``, ...): a
millisecond; shorter ones make epoch numbers overflow or a replication loop without end."""
MAX_SECONDS = 1e9
"""Upper bound of every time knob (about 31.7 years): epochs (<= 1e12 of them) fit SQLite."""
MAX_EPOCHS = 1_000_000_000
"""Upper bound of ``governance.vote_period_epochs`` (deadline epochs fit SQLite integers)."""
MAX_OUTAGE_RATE_PER_H = 3600.0
"""Upper bound of ``mirrors.outage_rate_per_h``: one outage per second per mirror."""
MAX_RETRIES = 100
"""Upper bound of ``fleet.max_retries`` (with ``backoff_factor <= MAX_BACKOFF_FACTOR`` the
longest backoff stays a finite float)."""
MAX_BACKOFF_FACTOR = 100.0
"""Upper bound of ``fleet.backoff_factor``."""
MIN_LIVENESS_THRESHOLD = 1e-6
"""Lower bound of ``consensus.liveness_threshold``: it is read as a fraction with a
denominator of at most 1,000,000, so a smaller one would round to 0."""

SECTIONS: dict[str, tuple[type, str]] = {
    "signers": (Signers, "release signers: who attests builds, churn, rotation, compromise"),
    "governance": (Governance, "the on-chain vote on a ReleaseVote: validators, stake, quorum"),
    "release": (Release, "the build being released"),
    "adversary": (Adversary, "the attacker holding the compromised signer keys (if any)"),
    "mirrors": (Mirrors, "the download mirrors: latency, bandwidth, outages, corruption"),
    "fleet": (Fleet, "the nodes: polling, fetch retries, hashing speed, restart"),
    "rollout": (Rollout, "how activation reaches the fleet: all at once or in waves"),
    "consensus": (Consensus, "block production by voting power: the liveness rule and the "
                  "upgrade mode (rolling, or halt at an upgrade height)"),
}

_H = 3600.0
KNOBS: tuple[Knob, ...] = (
    Knob("name", "str", "baseline", "", "scenario name (defaults to the file name)"),
    Knob(
        "description", "str",
        "Healthy release: 7 signers (threshold 5), 3 mirrors, 1000 nodes, all-at-once rollout.",
        "", "one-line description shown by `releasesim scenarios list`",
    ),
    Knob("replications", "int", 20, "", "independent replications per run", minimum=1,
         maximum=MAX_REPLICATIONS),
    Knob("seed", "int", 20261127, "", "root seed; replication i uses (seed, i)", minimum=0,
         maximum=MAX_SEED),
    Knob("horizon_s", "float", 6 * _H, "s", "simulated time to run each replication",
         minimum=MIN_SECONDS, maximum=MAX_SECONDS),
    Knob("sla_s", "float", 3600.0, "s",
         "a node not running the release sla_s after activation counts as lagging",
         minimum=MIN_SECONDS, maximum=MAX_SECONDS),
    Knob("epoch_s", "float", 60.0, "s", "length of one chain epoch",
         minimum=MIN_SECONDS, maximum=MAX_SECONDS),
    # [signers]
    Knob("signers.n", "int", 7, "", "configured release signers", minimum=1, maximum=1000),
    Knob("signers.threshold", "int", 5, "", "attestations needed for a ReleaseVote",
         minimum=1, max_key="signers.n"),
    Knob("signers.availability", "float", 0.9, "fraction",
         "long-run fraction of time each signer is online (alternating exponential spells, "
         "stationary from t = 0)", minimum=0, maximum=1),
    Knob("signers.mean_offline_s", "float", 1800.0, "s",
         "mean offline spell; mean online spell = mean_offline_s * a / (1 - a), "
         "a = availability", minimum=MIN_SECONDS, maximum=MAX_SECONDS),
    Knob("signers.signing_delay", "dist", LogNormal(120.0, 0.8), "s",
         "from build (or coming back online) to an online signer's attestation"),
    Knob("signers.rotation_interval_s", "float", 0.0, "s",
         "every this long, the rotation_count oldest keys leave the set and new ones join "
         "(0 = never); with signers.compromised the compromised keys are the oldest, so "
         "they leave first",
         minimum=0, maximum=MAX_SECONDS),
    Knob("signers.rotation_count", "int", 1, "", "keys swapped at each rotation",
         minimum=0, max_key="signers.n"),
    Knob("signers.threshold_schedule", "schedule", (), "",
         "threshold changes: array of tables {at_s = seconds, threshold = 1..n}, "
         "at_s strictly increasing"),
    Knob("signers.compromised", "int", 0, "",
         "fixed count of signer keys held by the adversary (the first ones of the initial "
         "set); excludes the probabilistic model (compromise_prob, compromise_probs, "
         "compromise_groups, adversary.keys_held)",
         minimum=0, max_key="signers.n"),
    Knob("signers.compromise_prob", "float", 0.0, "probability",
         "per key of the initial set, independently, that it is compromised over the "
         "scenario's window (drawn per replication)", minimum=0, maximum=1),
    Knob("signers.compromise_probs", "probs", (), "probability",
         "one compromise probability per key of the initial set, in key order, instead of "
         "compromise_prob ([] = compromise_prob for every key)"),
    Knob("signers.compromise_groups", "groups", (), "",
         "correlated compromise: array of tables {keys = [i, ...], prob = p}; with "
         "probability p all the keys (indices 0 .. n - 1 of the initial set) fall together "
         "(a shared HSM, cloud account), on top of the per-key compromise; groups may "
         "overlap"),
    # [governance]
    Knob("governance.vote_period_epochs", "int", 30, "epochs",
         "from proposal to the tally at the deadline epoch (proposal epoch + this): votes "
         "count through the deadline epoch, the tally closes it at its end and records "
         "activated_epoch = the deadline epoch", minimum=0, maximum=MAX_EPOCHS),
    Knob("governance.vote_quorum", "float", 0.5, "fraction",
         "fraction of total stake that must vote yes", minimum=0, maximum=1),
    Knob("governance.validators", "int", 50, "", "voting validators", minimum=1,
         maximum=100_000),
    Knob("governance.stake", "dist", Pareto(1.0, 1.5), "weight",
         "stake weight of each validator (relative)", positive=True),
    Knob("governance.participation", "float", 0.8, "probability",
         "that a validator votes at all", minimum=0, maximum=1),
    Knob("governance.yes_probability", "float", 0.95, "probability",
         "that a participating validator votes yes", minimum=0, maximum=1),
    Knob("governance.vote_delay", "dist", Exponential(600.0), "s",
         "from proposal to a participating validator's vote"),
    Knob("governance.submit_delay", "dist", Fixed(30.0), "s",
         "from attestation quorum to the ReleaseVote submission"),
    Knob("governance.stakes", "weights", (), "weight",
         "the validators' stakes, in validator order, instead of drawing them from stake "
         "([] = draw; else exactly governance.validators positive values)"),
    # [release]
    Knob("release.artifact_size_mb", "float", 80.0, "MB",
         "simulated size of the build (download and hashing time)",
         minimum=0, exclusive_minimum=True),
    Knob("release.build_at_s", "float", 0.0, "s", "when the build is produced", minimum=0,
         maximum=MAX_SECONDS),
    Knob("release.bad_release", "bool", False, "",
         "marks the build as defective (a label for reports; the failure rate itself is "
         "startup_failure_prob)"),
    Knob("release.startup_failure_prob", "float", 0.0, "probability",
         "per node, that the new build fails its boot check (then it is rolled back)",
         minimum=0, maximum=1),
    # [adversary]
    Knob("adversary.attack_at_s", "float", 0.0, "s",
         "when the adversary submits its malicious build (only if it holds a key)",
         minimum=0, maximum=MAX_SECONDS),
    Knob("adversary.keys_held", "int", -1, "keys",
         "-1 = the keys the compromise model draws; J >= 0 = condition on exactly J "
         "compromised keys, drawn from the model's exact conditional distribution given J "
         "(needs P(J) > 0)", minimum=-1, max_key="signers.n"),
    # [mirrors]
    Knob("mirrors.count", "int", 3, "", "mirrors serving the artifact", minimum=1,
         maximum=1000),
    Knob("mirrors.latency", "dist", LogNormal(0.2, 0.5), "s",
         "per download request, before the transfer starts"),
    Knob("mirrors.bandwidth_mbps", "dist", Fixed(200.0), "Mbit/s",
         "per-download transfer rate of each mirror", positive=True),
    Knob("mirrors.capacity", "int", 50, "downloads",
         "concurrent downloads per mirror (others queue)", minimum=1, maximum=1_000_000),
    Knob("mirrors.outage_rate_per_h", "float", 0.1, "1/h",
         "outage events per mirror per hour (Poisson); with correlation c and M mirrors a "
         "mirror goes down at rate*(1 - c + c*M) per hour", minimum=0,
         maximum=MAX_OUTAGE_RATE_PER_H),
    Knob("mirrors.outage_duration", "dist", Exponential(600.0), "s", "length of an outage"),
    Knob("mirrors.correlated_outage_prob", "float", 0.1, "probability",
         "that an outage hits all mirrors at once", minimum=0, maximum=1),
    Knob("mirrors.corruption_prob", "float", 0.001, "probability",
         "per download, that bytes arrive corrupted (caught by the BLAKE3 check)",
         minimum=0, maximum=1),
    # [fleet]
    Knob("fleet.nodes", "int", 1000, "", "nodes in the fleet", minimum=1,
         maximum=MAX_NODES, bytes_each=NODE_BYTES),
    Knob("fleet.poll_interval_s", "float", 600.0, "s",
         "how often a node checks for an activated release (0 = it learns at once)",
         minimum=0, maximum=MAX_SECONDS),
    Knob("fleet.fetch_timeout_s", "float", 600.0, "s",
         "a download attempt fails when it has not finished downloading this long after it "
         "asked its mirror for a slot (time queued for a slot counts: a request still "
         "queued then leaves the queue and fails over to the next mirror)",
         minimum=MIN_SECONDS, maximum=MAX_SECONDS),
    Knob("fleet.max_retries", "int", 5, "",
         "failed fetches retried per round; a node that used up a round starts a new one "
         "at its next poll", minimum=0, maximum=MAX_RETRIES),
    Knob("fleet.backoff_base_s", "float", 10.0, "s", "wait before the first retry", minimum=0,
         maximum=MAX_SECONDS),
    Knob("fleet.backoff_factor", "float", 2.0, "", "each further retry waits this much longer",
         minimum=1, maximum=MAX_BACKOFF_FACTOR),
    Knob("fleet.hash_speed_mbps", "dist", LogNormal(400.0, 0.6), "MB/s",
         "per node hashing throughput (verification time = artifact_size_mb / this)",
         positive=True),
    Knob("fleet.restart_delay", "dist", LogNormal(20.0, 0.5), "s",
         "node restart into the new (or the restored) build"),
    Knob("fleet.validators", "int", -1, "nodes",
         "how many of the fleet's nodes are validators: validator i (with its governance "
         "stake) runs node i, the rest are full nodes; -1 = every governance validator, at "
         "most fleet.nodes", minimum=-1, max_key="fleet.nodes"),
    # [rollout]
    Knob("rollout.strategy", "enum", "all_at_once", "", "how activation reaches the fleet",
         choices=("all_at_once", "waves")),
    Knob("rollout.waves", "fractions", (0.01, 0.1, 0.5, 1.0), "fraction",
         "waves: cumulative fleet fractions, strictly increasing, ending at 1.0"),
    Knob("rollout.wave_interval_s", "float", 1800.0, "s", "waves: time between two waves",
         minimum=0, maximum=MAX_SECONDS),
    Knob("rollout.halt_failure_rate", "float", 0.05, "fraction",
         "waves: halt when failed startups / nodes that tried the new build exceeds this",
         minimum=0, maximum=1),
    Knob("rollout.halt_min_attempts", "int", 10, "nodes",
         "waves: the halt rule applies only after this many nodes tried the new build",
         minimum=1),
    # [consensus]
    Knob("consensus.mode", "enum", "rolling", "",
         "rolling: a node switches builds when it installs and restarts; halt_at_height: "
         "the chain stops at the upgrade height and resumes when validators holding more "
         "than liveness_threshold of the voting power run the release",
         choices=("rolling", "halt_at_height")),
    Knob("consensus.liveness_threshold", "float", 2.0 / 3.0, "fraction",
         "blocks are produced while the voting power up (and, past an upgrade height, on "
         "the release) is more than this share of the total",
         minimum=MIN_LIVENESS_THRESHOLD, maximum=0.999999),
    Knob("consensus.upgrade_after_epochs", "int", 30, "epochs",
         "halt_at_height: the upgrade height is this many epochs after the activation",
         minimum=0, maximum=10_000_000),
    Knob("consensus.prefetch_fraction", "float", 0.5, "fraction",
         "halt_at_height: share of nodes that pre-fetch the release after activation and "
         "switch by themselves at the height (the Cosmovisor pattern); the others wait for "
         "their operator", minimum=0, maximum=1),
    Knob("consensus.operator_response", "dist", LogNormal(1800.0, 1.2), "s",
         "halt_at_height: from the height to the operator starting the update on a node "
         "that did not pre-fetch (heavy-tailed)"),
)

BY_KEY: dict[str, Knob] = {k.key: k for k in KNOBS}
TOP_KEYS: tuple[str, ...] = tuple(k.key for k in KNOBS if k.section is None)


# --------------------------------------------------------------------------------------
# Values: checking, converting, rendering
# --------------------------------------------------------------------------------------


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def toml_value(value: Any) -> str:
    """``value`` written as a TOML value (used in messages and docs)."""
    if isinstance(value, Distribution):
        value = value.to_dict()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def got(value: object) -> str:
    text = repr(value) if isinstance(value, str) else toml_value(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plain(value: Any) -> Any:
    """A resolved knob value as plain JSON/TOML data."""
    if isinstance(value, Distribution):
        return value.to_dict()
    if isinstance(value, ThresholdChange):
        return {"at_s": value.at_s, "threshold": value.threshold}
    if isinstance(value, CompromiseGroup):
        return {"keys": list(value.keys), "prob": value.prob}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


def range_text(knob: Knob) -> str:
    """The allowed range, for messages and docs (``>= 1``, ``[0, 1]``, ``1 .. signers.n``)."""
    low, high = knob.minimum, knob.maximum
    if knob.kind == "enum":
        return ", ".join(knob.choices)
    if knob.kind == "fractions":
        return "(0, 1], increasing, last 1.0"
    if knob.kind == "schedule":
        return "threshold 1 .. signers.n"
    if knob.kind == "probs":
        return "each [0, 1]; [] or signers.n values"
    if knob.kind == "weights":
        return "each > 0; [] or governance.validators values"
    if knob.kind == "groups":
        return f"keys 0 .. signers.n - 1, prob [0, 1]; at most {MAX_COMPROMISE_GROUPS} groups"
    if knob.kind == "dist":
        return "> 0" if knob.positive else ">= 0"
    if knob.max_key is not None:
        return f"{low:g} .. {knob.max_key}"
    if low is not None and high is not None:
        if knob.kind == "int":
            return f"[{int(low)}, {int(high):,}]"
        return f"{'(' if knob.exclusive_minimum else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{'>' if knob.exclusive_minimum else '>='} {low:g}"
    return ""


def memory_text(knob: Knob, value: int) -> str:
    """``; 1e+19 nodes would need about 17 EiB per replication`` for a size knob, else ``""``."""
    if not knob.bytes_each:
        return ""
    size = float(value) * knob.bytes_each
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            break
        size /= 1024
    return f" (that many would need about {size:,.0f} {unit} of memory per replication)"


def expected(knob: Knob) -> str:
    noun = {"int": "an integer", "float": "a number"}.get(knob.kind, "")
    rng = range_text(knob)
    if knob.minimum is not None and knob.maximum is not None:
        return f"{noun} in {rng}"
    return f"{noun} {rng}".strip()


# --------------------------------------------------------------------------------------
# Building a Scenario


__all__ = [
    "BY_KEY",
    "KNOBS",
    "MAX_COMPROMISE_GROUPS",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "SECTIONS",
    "TOP_KEYS",
    "Adversary",
    "CompromiseGroup",
    "Consensus",
    "Fleet",
    "Governance",
    "Kind",
    "Knob",
    "Mirrors",
    "Release",
    "Rollout",
    "Scenario",
    "Signers",
    "ThresholdChange",
    "expected",
    "got",
    "is_int",
    "is_number",
    "memory_text",
    "plain",
    "range_text",
    "toml_value",
]
