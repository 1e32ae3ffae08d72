"""Live updates for open review pages: ticket changes fanned out to server-sent events.

Why it is built this way:

- The node's service calls :meth:`ChangeBroker.publish` in whatever worker thread held or
  approved a ticket; the broker only numbers the event and hands it to each open stream's
  event loop (``call_soon_threadsafe``), so the acting thread never waits on a browser.
- Each stream has a bounded queue.  A browser too slow to keep up gets one ``resync``
  event (reload what you show) instead of an ever-growing backlog.
- Recent events are kept (a ring) with their sequence numbers, so a browser that
  reconnects with ``Last-Event-ID`` gets what it missed, or ``resync`` if that is gone.
  Streams are closed after a while on purpose: the browser reconnects on its own, and
  a node that is stopping does not wait on a stream that never ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harbor_confluence.node.service import TicketChange

__all__ = ["ChangeBroker", "LiveEvent", "Subscription"]


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One numbered message for the browsers: ``ticket`` (a change) or ``resync``."""

    seq: int
    kind: str
    data: dict[str, Any]
    epoch: str = ""

    def frame(self) -> str:
        """The event as an SSE frame (``id`` lets the browser resume after a reconnect)."""
        body = json.dumps(self.data, separators=(",", ":"))
        return f"id: {self.epoch}.{self.seq}\nevent: {self.kind}\ndata: {body}\n\n"


RESYNC = "resync"


class Subscription:
    """One open stream: events queued for it on its own event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=size)
        self.replay: list[LiveEvent] = []

    def put(self, event: LiveEvent) -> None:
        """On the stream's loop: queue the event, or collapse the backlog to ``resync``."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(LiveEvent(event.seq, RESYNC, {}, event.epoch))

    async def next(self, timeout: float) -> LiveEvent | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class ChangeBroker:
    """Numbers ticket changes and hands them to every open stream."""

    def __init__(self, history: int = 512, queue_size: int = 64) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._history: deque[LiveEvent] = deque(maxlen=history)
        self._subs: set[Subscription] = set()
        self._queue_size = queue_size
        self.epoch = secrets.token_hex(4)  # ids from before a restart do not resume here

    @property
    def seq(self) -> int:
        return self._seq

    def publish(self, change: TicketChange) -> None:
        """From any thread: a ticket was held or changed state."""
        t = change.ticket
        data = {
            "id": t.id,
            "state": t.state,
            "events": list(change.events),
            "action": t.action,
            "approvals": len(t.approvals),
            "approvals_required": t.approvals_required,
        }
        with self._lock:
            self._seq += 1
            event = LiveEvent(self._seq, "ticket", data, self.epoch)
            self._history.append(event)
            subs = list(self._subs)
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nothing to tell
                sub.loop.call_soon_threadsafe(sub.put, event)

    @contextlib.contextmanager
    def subscribe(self, last_event_id: str | None) -> Iterator[Subscription]:
        """A stream for this event loop; ``last_event_id`` (``Last-Event-ID``) replays what
        the browser missed since, or queues ``resync`` when that is no longer kept."""
        sub = Subscription(asyncio.get_running_loop(), self._queue_size)
        last_seen: int | None = None
        if last_event_id:
            epoch, _, seq = last_event_id.partition(".")
            last_seen = int(seq) if epoch == self.epoch and seq.isdigit() else -1
        with self._lock:
            if last_seen is not None and last_seen != self._seq:
                missed = [e for e in self._history if e.seq > last_seen]
                if (
                    last_seen < 0
                    or not missed
                    or missed[0].seq != last_seen + 1
                    or len(missed) > 32
                ):
                    sub.replay = [LiveEvent(self._seq, RESYNC, {}, self.epoch)]
                else:
                    sub.replay = missed
            self._subs.add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                self._subs.discard(sub)

    async def stream(
        self,
        sub: Subscription,
        *,
        heartbeat: float,
        lifetime: float,
        alive: Any,
    ) -> AsyncIterator[str]:
        """SSE text for one subscription until ``lifetime`` passes or ``alive()`` is false
        (checked at each heartbeat: the session ended)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lifetime
        yield (
            f"retry: 2000\nid: {self.epoch}.{self._seq}\n\n"
            if not sub.replay
            else "retry: 2000\n\n"
        )
        for missed in sub.replay:
            yield missed.frame()
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return
            event = await sub.next(min(heartbeat, left))
            if event is not None:
                yield event.frame()
            elif not alive():
                yield "event: signed-out\ndata: {}\n\n"
                return
            else:
                yield ": keep-alive\n\n"
