"""Sans-IO calls: the pipeline as a generator of steps, and the two drivers that run it.

A call is written once, as a generator (a *flow*) that yields what it needs done and
receives the outcome: :class:`Send` (a request, through the transport's bounds and
retries), :class:`Block` (disk, SQLite, fsync or a whole-body conversion) and
:class:`Sleep`.  :func:`drive` runs a flow on the calling thread; :func:`adrive` runs it
on an event loop, sending with the async client and moving every ``Block`` to a worker
thread, so nothing a flow does can stall the loop.  This is the shape of httpx's
``Auth.auth_flow``: the logic knows nothing of sync or async, the drivers know nothing of
the logic.

An exception raised by a step (an interrupt or a cancellation included) is thrown back
into the flow at the ``yield`` that asked for it, so a flow handles a failed read or a
failed audit append where it made it, and an approved write interrupted while it was
being sent is recorded as ``unknown`` before the interrupt goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx

    from .request import PreparedRequest
    from .transport import SendFailure

__all__ = ["Block", "Flow", "Send", "Sleep", "Step", "adrive", "drive"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    """Send this request; the flow receives ``httpx.Response | SendFailure``."""

    prepared: PreparedRequest


@dataclass(frozen=True, slots=True)
class Block:
    """Run ``fn(*args)`` and hand back its value: work that may block (a file, SQLite,
    an fsync) or take a while (a whole body converted), kept off any event loop."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait (a task poll's interval)."""

    seconds: float


Step = Send | Block | Sleep
Flow = Generator[Step, Any, T]
Sender = Callable[["PreparedRequest"], "httpx.Response | SendFailure"]


class _Run:
    """A flow in progress: feeds it each step's value or exception, keeps its result."""

    __slots__ = ("error", "flow", "result", "value")

    def __init__(self, flow: Flow[Any]) -> None:
        self.flow = flow
        self.value: Any = None
        self.error: BaseException | None = None
        self.result: Any = None

    def next(self) -> Step | None:
        """The flow's next step, or None once it has returned (its value in ``result``)."""
        value, error = self.value, self.error
        self.value = self.error = None
        try:
            return self.flow.throw(error) if error is not None else self.flow.send(value)
        except StopIteration as done:
            self.result = done.value
            return None


def _step(step: Step, send: Sender) -> Any:
    if isinstance(step, Send):
        return send(step.prepared)
    if isinstance(step, Block):
        return step.fn(*step.args)
    time.sleep(step.seconds)
    return None


async def _astep(step: Step, asend: Callable[[PreparedRequest], Any]) -> Any:
    if isinstance(step, Send):
        return await asend(step.prepared)
    if isinstance(step, Block):
        return await asyncio.to_thread(step.fn, *step.args)
    await asyncio.sleep(step.seconds)
    return None


def drive(flow: Flow[T], send: Sender) -> T:
    """Run ``flow`` to its end on this thread; ``send`` sends one prepared request."""
    run = _Run(flow)
    while (step := run.next()) is not None:
        try:
            run.value = _step(step, send)
        except BaseException as exc:  # an interrupt too: the flow records what it must
            run.error = exc
    return run.result  # type: ignore[no-any-return]


async def adrive(flow: Flow[T], asend: Callable[[PreparedRequest], Any]) -> T:
    """Run ``flow`` on the running event loop: sends are awaited and blocking steps run
    in a worker thread, so the loop never waits on a disk or a lock."""
    run = _Run(flow)
    while (step := run.next()) is not None:
        try:
            run.value = await _astep(step, asend)
        except BaseException as exc:  # an interrupt too: the flow records what it must
            run.error = exc
    return run.result  # type: ignore[no-any-return]
