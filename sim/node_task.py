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
``Event.succeed(value)`` would push. A generator that returns another generator hands
over to it at once (the node's next phase), so only one phase's frame is alive.

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
from simpy.events import NORMAL, URGENT, Event, EventPriority

PARKED = None
"""Yielded by a node generator that waits for ``NodeTask.wake`` (nothing is scheduled)."""

NodeGenerator = Generator[float | Event | None, Any, Any]
"""A node phase: yields delays, SimPy events or ``PARKED``; may return the next phase."""


def _resume(task: NodeTask) -> None:
    """The callback of every task's wake-up: resume the task with its own value."""
    task.send(task._value)


_RESUME = (_resume,)
"""The callbacks of every task on the queue: one tuple shared by all tasks (step sets
an event's ``callbacks`` to None and iterates its own reference; a tuple, so nothing can
add to it)."""


class NodeTask:
    """A node generator driven from the environment's queue (see the module docstring).

    ``NodeTask(env).start(generator)`` starts it as SimPy starts a process: an entry of
    priority ``URGENT`` at ``now`` (``simpy.events.Initialize``). The generator is given
    after the task exists, so it can hold its own task (to park it at a mirror). Small on
    purpose (four slots, no per-task callback list or bound method): a 100k-node fleet has
    a task per node at work.
    """

    __slots__ = ("env", "generator", "callbacks", "_value")
    _ok = True  # read by Environment.step: this event never fails

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.generator: NodeGenerator | None = None
        self._value: Any = None
        self.callbacks: tuple[Any, ...] | None = None

    def start(self, generator: NodeGenerator) -> NodeTask:
        """Drive ``generator`` (which may hold this task, to park itself) from now on."""
        self.generator = generator
        self._schedule(0, URGENT, None)
        return self

    def wake(self, value: Any) -> None:
        """Resume the parked generator with ``value`` at this instant (``Event.succeed``)."""
        self._schedule(0, NORMAL, value)

    def sleep(self, delay: float, priority: EventPriority) -> None:
        """Wake the task (parked next) after ``delay`` with ``priority``: the entry a
        ``Timeout`` with that priority, made now, would have."""
        self._schedule(delay, priority, None)

    def _schedule(self, delay: float, priority: EventPriority, value: Any) -> None:
        """Put the task on the queue: ``Environment.schedule``'s entry for this event
        (``send`` inlines it for an ordinary wait, the hot path)."""
        env = self.env
        self._value = value
        self.callbacks = _RESUME
        heappush(env._queue, (env._now + delay, priority, next(env._eid), self))

    def _resume_from(self, event: Event) -> None:
        """Callback on a real SimPy event the generator yielded: go on with its value."""
        self.send(event._value)

    def send(self, value: Any) -> None:
        """Run the generator with ``value`` until its next wait, and schedule that wait."""
        while True:
            try:
                target = self.generator.send(value)  # type: ignore[union-attr]
            except StopIteration as end:
                if end.value is None:
                    return
                self.generator = end.value  # the next phase: go on with it at once
                value = None
                continue
            if isinstance(target, Event):
                if target.callbacks is not None:
                    target.callbacks.append(self._resume_from)
                    return
                value = target._value  # already processed: go on at once, as SimPy does
                continue
            if target is not PARKED:  # a wait: ``_schedule(target, NORMAL, None)``, inlined
                if target < 0:
                    raise ValueError(f"Negative delay {target}")
                env = self.env
                self._value = None
                self.callbacks = _RESUME
                heappush(env._queue, (env._now + target, NORMAL, next(env._eid), self))
            return


__all__ = ["PARKED", "NodeTask"]
