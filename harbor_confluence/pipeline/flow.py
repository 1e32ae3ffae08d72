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
import collections
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx

    from .request import PreparedRequest
    from .transport import SendFailure

__all__ = ["Block", "Flow", "LoopShare", "Send", "Sleep", "Step", "adrive", "drive"]

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


async def adrive(
    flow: Flow[T], asend: Callable[[PreparedRequest], Any], share: LoopShare | None = None
) -> T:
    """Run ``flow`` on the running event loop: sends are awaited and blocking steps run
    in a worker thread, so the loop never waits on a disk or a lock.  With ``share``, the
    flow's own work between steps waits for the loop's next iteration once that
    iteration's budget is spent."""
    run = _Run(flow)
    while True:
        if share is not None and (wait := share.pace()) is not None:
            await wait
        if (step := run.next()) is None:
            return run.result  # type: ignore[no-any-return]
        try:
            run.value = await _astep(step, asend)
        except BaseException as exc:  # an interrupt too: the flow records what it must
            run.error = exc


class LoopShare:
    """How much of one event loop the calls of one runner may take.

    Two bounds, both so that no other coroutine on the loop waits long:

    - **admission**: at most ``slots`` calls in progress; the others wait at
      :meth:`enter`, before any work (a future in a queue: about a microsecond each, so a
      thousand calls started together cost the loop a millisecond, not their validation,
      request building and connection set-up all in one iteration).  Only the first call
      to arrive in an iteration is admitted at once; free slots go to later arrivals at
      the start of the next iteration, so a burst's first turn is only its waiting;
    - **a budget per loop iteration**: a call about to run its own code (validation,
      building, summarising) while this iteration has already spent ``budget`` seconds
      on such work waits for the next iteration (:meth:`pace`).  Every iteration then
      runs at most the budget plus one step, plus the network reads that completed.

    Why not only fewer slots: the answers of all calls in flight can arrive together,
    and each one's summary and audit record would then run in one iteration.
    """

    __slots__ = (
        "_admitting",
        "_entered",
        "_free",
        "_marked",
        "_new_turn_cb",
        "_slice",
        "_waiting",
        "budget",
        "loop",
        "slots",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, slots: int, budget: float) -> None:
        self.loop = loop
        self.slots = slots
        self._free = slots
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self.budget = budget
        # Per loop iteration, reset by one callback at the start of the next (_mark):
        self._slice = -1.0  # when this iteration's first paced step began; -1: none yet
        self._entered = False  # a call was admitted at once in this iteration
        self._marked = False  # the reset is scheduled
        self._new_turn_cb = self._new_turn  # one bound method, scheduled per iteration
        self._admitting = False  # _admit is scheduled for the next iteration

    @property
    def in_progress(self) -> int:
        """Calls admitted and not yet over."""
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        """Calls waiting to be admitted (cancelled ones may be counted until skipped)."""
        return len(self._waiting)

    # -- admission ---------------------------------------------------------------------

    def enter(self) -> asyncio.Future[None] | None:
        """None: admitted.  Otherwise a future to await; it is done when admitted."""
        if self._free > 0 and not self._waiting and not self._entered:
            self._free -= 1
            self._entered = True
            self._mark()
            return None
        admitted: asyncio.Future[None] = self.loop.create_future()
        self._waiting.append(admitted)
        if self._free > 0 and not self._admitting:
            self._admitting = True
            self.loop.call_soon(self._admit)
        return admitted

    def _mark(self) -> None:
        """This iteration has admitted a call or paced one: reset that when it is over.
        The callback runs first in the next iteration, before any call this one deferred."""
        if not self._marked:
            self._marked = True
            self.loop.call_soon(self._new_turn_cb)

    def _new_turn(self) -> None:
        self._marked = False
        self._entered = False
        self._slice = -1.0

    def _admit(self) -> None:
        """Free slots to the calls that arrived while one was admitted at once."""
        self._admitting = False
        while self._free > 0 and self._waiting:
            admitted = self._waiting.popleft()
            if not admitted.done():
                self._free -= 1
                admitted.set_result(None)

    def leave(self) -> None:
        """A call is over: hand its slot to the longest waiting call still waiting."""
        while self._waiting:
            admitted = self._waiting.popleft()
            if not admitted.done():  # a cancelled waiter is skipped
                admitted.set_result(None)
                return
        self._free += 1

    def cancelled(self, wait: asyncio.Future[None]) -> None:
        """The call waiting on ``wait`` (from :meth:`enter`) was cancelled: if it had been
        admitted meanwhile, its slot is handed on rather than lost."""
        if wait.done() and not wait.cancelled():
            self.leave()

    # -- the budget per iteration --------------------------------------------------------

    def pace(self) -> Any:
        """None: go on in this iteration.  Otherwise an awaitable that returns in a later
        iteration with a new budget."""
        now = time.perf_counter()
        if self._slice < 0:
            self._open(now)
            return None
        if now - self._slice <= self.budget:
            return None
        return self._next_iteration()

    def _open(self, now: float) -> None:
        self._slice = now
        self._mark()

    async def _next_iteration(self) -> None:
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            if self._slice < 0:
                self._open(now)
                return
            if now - self._slice <= self.budget:
                return
