"""Prometheus text exposition of the release counters, checked with a small strict parser."""

from __future__ import annotations

import math
import re

import pytest

from releasesim.model.crypto import build_hash_of
from releasesim.model.errors import QuorumError
from releasesim.model.governance import approve_release, cast_vote, propose_release
from releasesim.model.metrics import render_prometheus
from releasesim.model.quorum import Attestation

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
_SAMPLE = re.compile(
    rf"^(?P<name>{_NAME})(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)?\}})? (?P<value>\S+)$"
)
_HELP = re.compile(rf"^# HELP (?P<name>{_NAME}) (?P<text>.+)$")
_TYPE = re.compile(rf"^# TYPE (?P<name>{_NAME}) (?P<type>counter|gauge|histogram|summary|untyped)$")
_VALUE = re.compile(r"^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$")


def parse_exposition(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Parse the Prometheus text format strictly: every line is HELP, TYPE or a sample of the
    family declared just before; each family once; each series once; trailing newline."""
    assert text.endswith("\n"), "exposition must end with a newline"
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    helped: set[str] = set()
    current: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        where = f"line {number}: {line!r}"
        if match := _HELP.match(line):
            name = match["name"]
            assert name not in helped, f"second HELP for {name}: {where}"
            helped.add(name)
            current = name
        elif match := _TYPE.match(line):
            name = match["name"]
            assert name not in families, f"second TYPE for {name}: {where}"
            assert match["type"] == "counter", where
            assert name == current, f"TYPE without its HELP line: {where}"
            families[name] = {}
        elif match := _SAMPLE.match(line):
            name = match["name"]
            assert name == current and name in families, f"sample outside its family: {where}"
            labels = tuple(sorted(
                tuple(pair.split("=", 1)) for pair in re.findall(_LABEL, match["labels"] or "")
            ))
            labels = tuple((k, v.strip('"')) for k, v in labels)
            assert labels not in families[name], f"duplicate series: {where}"
            assert _VALUE.match(match["value"]), f"bad value: {where}"
            value = float(match["value"].replace("Inf", "inf"))
            assert not math.isnan(value) and value >= 0, f"counter must be >= 0: {where}"
            families[name][labels] = value
        else:
            raise AssertionError(f"not a Prometheus text line: {where}")
    assert helped == set(families), "every family needs HELP and TYPE"
    return families


ZERO = {
    "release_votes_total": {
        (("choice", "yes"),): 0.0, (("choice", "no"),): 0.0, (("choice", "abstain"),): 0.0,
    },
    "release_installs_total": {(): 0.0},
    "release_quorum_fail_total": {(): 0.0},
}


@pytest.mark.parametrize(
    "bad",
    [
        "release_installs_total 0\n",  # sample before HELP/TYPE
        "# HELP a x\n# TYPE a counter\na{choice=yes} 1\n",  # unquoted label
        "# HELP a x\n# TYPE a counter\na 1 2 3\n",
        "# HELP a x\n# TYPE a counter\na one\n",
        "# HELP a x\n# TYPE a counter\na 1",  # no trailing newline
        "# HELP a x\n# TYPE a counter\na 1\na 2\n",  # duplicate series
    ],
)
def test_the_parser_is_strict(bad):
    with pytest.raises(AssertionError):
        parse_exposition(bad)


def test_all_counters_are_exposed_at_zero_from_the_start(store):
    assert parse_exposition(render_prometheus(store)) == ZERO


def test_values_after_votes_installs_and_quorum_failures(store, signers):
    keys = tuple(s.public_key for s in signers)
    build_hash = build_hash_of(b"metrics artifact")
    attestations = [Attestation(s.public_key, s.attest(build_hash)) for s in signers[:3]]
    for _ in range(2):
        with pytest.raises(QuorumError):
            propose_release(store, build_hash=build_hash, attestations=attestations[:1],
                            signer_set=keys, threshold=3, proposer="p", epoch=0)
    proposal = propose_release(store, build_hash=build_hash, attestations=attestations,
                               signer_set=keys, threshold=3, proposer="p", epoch=0,
                               vote_period_epochs=2)
    cast_vote(store, proposal.id, voter="a", weight=1, choice="no", epoch=0)
    cast_vote(store, proposal.id, voter="b", weight=1, choice="abstain", epoch=1)
    cast_vote(store, proposal.id, voter="a", weight=1, choice="yes", epoch=1)
    approve_release(store, proposal.id, voter="c", weight=2, epoch=2)
    for node in range(3):
        store.record_install(build_hash, f"node-{node}", 100.0 + node)

    families = parse_exposition(render_prometheus(store))
    assert families == {
        "release_votes_total": {
            (("choice", "yes"),): 2.0, (("choice", "no"),): 1.0, (("choice", "abstain"),): 1.0,
        },
        "release_installs_total": {(): 3.0},
        "release_quorum_fail_total": {(): 2.0},
    }


def test_fractional_values_render_as_numbers(store):
    store.increment("release_installs_total", by=0.5)
    families = parse_exposition(render_prometheus(store))
    assert families["release_installs_total"] == {(): 0.5}
