"""Node updates driven straight from SimPy's event queue: one reusable wake-up per node.

A simulated fleet waits hundreds of thousands of times per replication (downloads,
backoffs, hashing, restarts). A ``simpy.Process`` pays for each wait with a new
``Timeout`` object, ``Environment.schedule`` and ``Process._resume``'s general
machinery (interrupts, failed events, the active process). A ``NodeTask`` drives the
node's generator itself and is its own event: a wait of ``d`` seconds is the generator
yielding the number ``d``, and the task puts *itself* back on the environment's queue
at ``now + d`` -- the very ``(time, priority, event id, event)`` entry
``Environment.schedule`` would push for a ``Timeout(env, d)`` created at that moment,
taking the next event id at the same point of the run. So every event is processed in
the order plain SimPy processes would give, and the results are bit-identical; only the
Python work per wait is smaller. The generator may also yield a real SimPy event (it
resumes with the event's value when the event is processed) or ``PARKED``: then nothing
is scheduled, and whoever holds the task wakes it with ``wake(value)`` (a mirror
granting or withdrawing a queued download request), the same queue entry
``Event.succeed(value)`` would push.

What a ``NodeTask`` does not do, unlike ``simpy.Process``: it is not an event others can
wait for (no completion event is scheduled when the generator ends: nothing waits for a
node's update), it cannot be interrupted, and an exception in the generator propagates
out of ``Environment.run`` at once instead of failing a process event first.

Uses ``Environment._now``, ``_queue`` and ``_eid`` (SimPy 4's scheduling state, as
``Environment.schedule`` does; the version range is pinned in ``pyproject.toml``).
Imports only ``heapq`` and ``simpy``.
"""

from __future__ import annotations

from collections.abc import Generator
from heapq import heappush
from typing import Any

from simpy.core import Environment
from simpy.events import NORMAL, URGENT, Event

PARKED = None
"""Yielded by a node generator that waits for ``NodeTask.wake`` (nothing is scheduled)."""

NodeGenerator = Generator[float | Event | None, Any, None]


class NodeTask:
    """A node generator driven from the environment's queue (see the module docstring).

    ``NodeTask(env).start(generator)`` starts it as SimPy starts a process: an entry of
    priority ``URGENT`` at ``now`` (``simpy.events.Initialize``). The generator is given
    after the task exists, so it can hold its own task (to park it at a mirror).
    """

    __slots__ = ("env", "generator", "callbacks", "_callbacks", "_ok", "_value", "resume")

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.generator: NodeGenerator | None = None
        self._ok = True  # read by Environment.step: this event never fails
        self._value: Any = None
        self.resume = self._resume
        # one list, reused for every wake-up: Environment.step sets ``callbacks`` to None
        # and iterates its own reference to the list, which is never changed
        self._callbacks = [self.resume]
        self.callbacks: list[Any] | None = None

    def start(self, generator: NodeGenerator) -> NodeTask:
        """Drive ``generator`` (which may hold this task, to park itself) from now on."""
        env = self.env
        self.generator = generator
        self.callbacks = self._callbacks
        heappush(env._queue, (env._now, URGENT, next(env._eid), self))
        return self

    def wake(self, value: Any) -> None:
        """Resume the parked generator with ``value`` at this instant (``Event.succeed``)."""
        env = self.env
        self._value = value
        self.callbacks = self._callbacks
        heappush(env._queue, (env._now, NORMAL, next(env._eid), self))

    def _resume(self, event: Any) -> None:
        value = event._value
        while True:
            try:
                target = self.generator.send(value)  # type: ignore[union-attr]
            except StopIteration:
                return
            if isinstance(target, Event):
                if target.callbacks is not None:
                    target.callbacks.append(self.resume)
                    return
                value = target._value  # already processed: go on at once, as SimPy does
                continue
            if target is not PARKED:
                if target < 0:
                    raise ValueError(f"Negative delay {target}")
                env = self.env
                self._value = None
                self.callbacks = self._callbacks
                heappush(env._queue, (env._now + target, NORMAL, next(env._eid), self))
            return


__all__ = ["PARKED", "NodeTask"]
