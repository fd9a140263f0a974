"""The engine's fast paths give exactly what the plain versions they replace give.

Each fast path of issue 14 is checked against a reference written here the plain way:
``NodeTask`` against ``simpy.Process`` (the same event order, ties and priorities
included), a mirror's one ``DeadlineWatch`` against one ``Timeout`` per queued request,
``record_installs`` against ``record_install`` one by one, ``backwards_installs`` (SQL)
against a loop, the parsed-hex and quorum memos against fresh evaluations, the skipped
sort against pandas' stable sort, the threaded curve bootstrap against a single loop,
and the paused cyclic collector's restore. All seeded; no timing assertions.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Generator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import simpy
from simpy.events import Event, EventPriority, Timeout

from releasesim.model import crypto, quorum
from releasesim.model.errors import MalformedInput, StoreError
from releasesim.model.store import GovernanceStore
from releasesim.reports import intervals
from releasesim.sim.mirrors import SimMirror
from releasesim.sim.node_task import PARKED, NodeTask
from releasesim.sim.tables import _already_sorted
from releasesim.sim.world import cyclic_gc_paused

AFTER = EventPriority(2)


class _Late(Timeout):
    """A Timeout with priority ``AFTER`` (what the fleet's next-poll wait used to be)."""

    def __init__(self, env: simpy.Environment, delay: float) -> None:
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, AFTER, delay)


def _programs(seed: int, count: int) -> list[list[tuple[str, float]]]:
    """Random wait programs with many ties: whole-second delays, zero waits, late waits."""
    rng = np.random.default_rng(seed)
    kinds = np.array(["wait", "wait", "wait", "late", "park"])
    return [
        [(str(kinds[rng.integers(len(kinds))]), float(rng.integers(0, 4)))
         for _ in range(int(rng.integers(1, 8)))]
        for _ in range(count)
    ]


def _run(programs: list[list[tuple[str, float]]], fast: bool) -> list[tuple]:
    """Run the programs as node tasks (``fast``) or SimPy processes; the event log."""
    env = simpy.Environment()
    log: list[tuple] = []
    parked: deque[Any] = deque()

    def node(task: Any, i: int, program: list[tuple[str, float]]) -> Generator:
        for step, (kind, delay) in enumerate(program):
            log.append((env.now, i, step, kind))
            if kind == "wait":
                if fast:
                    yield delay
                elif delay > 0:
                    yield env.timeout(delay)
                else:
                    yield env.timeout(0)
            elif kind == "late":
                if fast:
                    task.sleep(delay, AFTER)
                    got = yield PARKED
                else:
                    got = yield _Late(env, delay)
                log.append((env.now, i, "late-woke", got))
            else:  # park: a server wakes it with a value
                if fast:
                    parked.append(task)
                    got = yield PARKED
                else:
                    event = Event(env)
                    parked.append(event)
                    got = yield event
                log.append((env.now, i, "woken", got))
            if step == 1 and i + len(programs) // 2 < len(programs) and i < len(programs) // 2:
                start(i + len(programs) // 2)  # a node starting another mid-run

    def start(i: int) -> None:
        if fast:
            task = NodeTask(env)
            task.start(node(task, i, programs[i]))
        else:
            env.process(node(None, i, programs[i]))

    def server() -> Generator:
        value = 0
        while True:
            yield env.timeout(1.0)
            log.append((env.now, "server"))
            if parked:
                value += 1
                waiter = parked.popleft()
                if fast:
                    waiter.wake(value)
                else:
                    waiter.succeed(value)

    env.process(server())
    for i in range(len(programs) // 2 + len(programs) % 2):
        start(i)
    env.run(until=60.0)
    return log


@pytest.mark.parametrize("seed", range(6))
def test_node_tasks_process_events_in_simpys_order(seed: int) -> None:
    programs = _programs(seed, 24)
    plain = _run(programs, fast=False)
    assert plain == _run(programs, fast=True)
    assert len(plain) > 50  # the programs really ran (and tie on whole seconds)


def test_a_node_task_rejects_a_negative_wait_and_hands_over_phases() -> None:
    env = simpy.Environment()
    seen: list[tuple[float, str]] = []

    def second() -> Generator:
        seen.append((env.now, "second"))
        yield 2.0
        seen.append((env.now, "second done"))

    def first() -> Generator:
        yield 1.0
        seen.append((env.now, "first done"))
        return second()

    NodeTask(env).start(first())
    env.run()
    assert seen == [(1.0, "first done"), (1.0, "second"), (3.0, "second done")]

    def bad() -> Generator:
        yield -1.0

    NodeTask(env).start(bad())
    with pytest.raises(ValueError, match="Negative delay"):
        env.run()


def _queue_log(fast: bool, asks: list[tuple[float, float]], capacity: int,
               timeout: float) -> list[tuple]:
    """Nodes asking one mirror for a slot at ``asks[i] = (at, hold)``; the grant log."""
    env = simpy.Environment()
    mirror = SimMirror(0, env, capacity, 0.0, np.random.default_rng(0))
    log: list[tuple] = []

    def withdraw(deadline: Event) -> None:  # the plain way: one Timeout per request
        if not deadline.value.triggered:
            deadline.value.succeed(False)

    def node(task: Any, i: int, at: float, hold: float) -> Generator:
        if fast:
            yield at
        else:
            yield env.timeout(at)
        if mirror.in_use < mirror.capacity:
            mirror.in_use += 1
            granted = True
        elif fast:
            mirror.queue_request(task, timeout)
            granted = yield PARKED
        else:
            request = Event(env)
            mirror.waiting.append(request)
            Timeout(env, timeout, request).callbacks.append(withdraw)
            granted = yield request
        log.append((env.now, i, granted))
        if not granted:
            return
        if fast:
            yield hold
        else:
            yield env.timeout(hold)
        if fast:
            if not (mirror.waiting and mirror.grant_next()):
                mirror.in_use -= 1
        else:
            while mirror.waiting:
                request = mirror.waiting.popleft()
                if not request.triggered:
                    request.succeed(True)
                    break
            else:
                mirror.in_use -= 1
        log.append((env.now, i, "freed"))

    for i, (at, hold) in enumerate(asks):
        if fast:
            task = NodeTask(env)
            task.start(node(task, i, at, hold))
        else:
            env.process(node(None, i, at, hold))
    env.run()
    return log


@pytest.mark.parametrize("seed", range(8))
def test_one_deadline_watch_withdraws_as_one_timeout_per_request(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    asks = [(float(rng.integers(0, 20)), float(rng.integers(1, 15))) for _ in range(40)]
    capacity = int(rng.integers(1, 4))
    plain = _queue_log(False, asks, capacity, timeout=6.0)
    assert plain == _queue_log(True, asks, capacity, timeout=6.0)
    assert any(entry[2] is False for entry in plain)  # some requests were withdrawn
    assert any(entry[2] is True for entry in plain)


def test_record_installs_records_what_record_install_records() -> None:
    h1, h2 = "ab" * 32, "cd" * 32
    rows = [(h1, "node-0", 5.0), (h2, "node-1", 3.0), (h1, "node-2", 4.0),  # 4.0 clamps to 5
            (h1, "node-3", 9.0), (h2, "node-4", 1.0)]
    one, batch = GovernanceStore.memory(), GovernanceStore.memory()
    expected = [one.record_install(*row) for row in rows]
    assert batch.record_installs(rows) == expected == [5.0, 3.0, 5.0, 9.0, 3.0]
    assert batch.installs() == one.installs()
    assert batch.counter("release_installs_total") == one.counter("release_installs_total") == 5
    assert batch.record_installs([]) == []


def test_a_failed_batch_records_nothing() -> None:
    store = GovernanceStore.memory()
    store.record_install("ab" * 32, "node-0", 1.0)
    with pytest.raises(StoreError):
        store.record_installs([("ab" * 32, "node-1", 2.0), ("ab" * 32, None, 3.0)])  # type: ignore[list-item]
    assert [r.node_id for r in store.installs()] == ["node-0"]
    assert store.counter("release_installs_total") == 1


def test_backwards_installs_counts_what_a_loop_counts() -> None:
    rng = np.random.default_rng(5)
    store = GovernanceStore.memory()
    builds = ["ab" * 32, "cd" * 32, "ef" * 32]
    for i in range(300):  # written around the clamp, as a damaged ledger would be
        store._db.execute("INSERT INTO installs (build_hash, node_id, ts) VALUES (?, ?, ?)",
                          (builds[int(rng.integers(3))], f"node-{i}", float(rng.integers(50))))
    last: dict[str, float] = {}
    expected = 0
    for record in store.installs():
        if record.build_hash in last and record.ts < last[record.build_hash]:
            expected += 1
        last[record.build_hash] = record.ts
    assert expected > 0 and store.backwards_installs() == expected


def test_parse_hex_memo_answers_as_a_fresh_parse() -> None:
    text = "AB" * 32
    assert crypto.parse_hash(text) == crypto.parse_hash(text) == "ab" * 32
    with pytest.raises(MalformedInput, match="expected 64 bytes"):
        crypto.parse_signature(text)  # the same text, another size: not from the memo
    with pytest.raises(MalformedInput, match="0x"):
        crypto.parse_hash("0x" + "ab" * 31)
    for i in range(crypto.VALID_MAX + 10):  # bounded
        crypto.parse_hash(f"{i:064x}")
    assert len(crypto._VALID) <= crypto.VALID_MAX


def test_quorum_identity_memo_matches_fresh_evaluations() -> None:
    build = "12" * 32
    signers = [crypto.ReleaseSigner.derived(f"fast-paths-{i}") for i in range(4)]
    pubs = tuple(signer.public_key for signer in signers)
    attestations = tuple(quorum.Attestation(signer.public_key, signer.attest(build))
                         for signer in signers)
    fresh = quorum._evaluate(build, attestations, pubs, 3)
    first = quorum.evaluate_quorum(build, attestations, pubs, 3)
    assert first == fresh and first.met
    assert quorum.evaluate_quorum(build, attestations, pubs, 3) is first  # by identity
    fewer = attestations[:2]
    assert not quorum.evaluate_quorum(build, fewer, pubs, 3).met  # other tuple, other answer
    assert quorum.evaluate_quorum(build, list(attestations), list(pubs), 3) == fresh
    assert quorum.evaluate_quorum(build, attestations, pubs, 5).problem is not None
    for i in range(quorum.RECENT_MAX + 5):  # bounded
        quorum.evaluate_quorum(build, attestations[: 1 + i % 4], pubs, 1 + i % 3)
    assert len(quorum._RECENT) <= quorum.RECENT_MAX


@pytest.mark.parametrize("seed", range(10))
def test_a_sort_is_skipped_only_when_it_would_change_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    frame = pd.DataFrame({
        "replication": np.sort(rng.integers(0, 3, n)),
        "node": rng.integers(0, 5, n),
        "start_s": rng.integers(0, 4, n).astype(float),
    })
    keys = ["replication", "node", "start_s"]
    stable = frame.sort_values(keys, kind="stable", ignore_index=True)
    assert _already_sorted(stable, keys)
    assert _already_sorted(frame, keys) == frame.equals(stable)
    with_nan = stable.copy()
    with_nan.loc[0, "start_s"] = np.nan
    assert not _already_sorted(with_nan, keys)  # left to the sort (NaN last)


def test_the_threaded_curve_bootstrap_gives_the_single_loop_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(9)
    curves = np.round(rng.random((41, 30)), 1)  # many ties; odd and even resample medians
    monkeypatch.setattr(intervals, "PARALLEL_MIN_WORK", 0)
    median, low, high = intervals.bootstrap_curve_median(curves, resamples=300, seed=4)
    idx = np.random.Generator(np.random.PCG64(4)).integers(0, 41, size=(300, 41))
    meds = np.array([np.median(curves[i], axis=0) for i in idx])
    want_low, want_high = np.quantile(meds, [0.025, 0.975], axis=0)
    assert np.array_equal(median, np.median(curves, axis=0))
    assert np.array_equal(low, want_low) and np.array_equal(high, want_high)


def test_the_cyclic_collector_is_paused_and_restored_as_it_was() -> None:
    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off: left off
    finally:
        gc.enable()
