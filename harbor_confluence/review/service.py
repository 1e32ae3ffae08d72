"""The operator's side of the review queue, as one service with the same shape everywhere.

``Reviews`` works an embedded queue as a named operator; ``NodeClient.reviews`` has the
same methods and returns the same :class:`~harbor_confluence.review.queue.Ticket`\\ s over a
node, where the operator is the one the token proves.  Agents poll ``status`` and may
``cancel`` their own tickets; approving, rejecting, running and resolving are operator
acts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from harbor_confluence.pipeline.executor import Port

    from .queue import ReviewQueue, Ticket

__all__ = ["Reviews", "ReviewsService"]


class ReviewsService(Protocol):
    """What both :class:`Reviews` and the node client's reviews offer."""

    def list(
        self, state: str | None = None, limit: int = 50, after: str | None = None
    ) -> list[Ticket]: ...

    def show(self, ticket_id: str) -> Ticket: ...

    def status(self, ticket_id: str) -> dict[str, Any]: ...

    def approve(
        self,
        ticket_id: str,
        *,
        reason: str | None = None,
        fingerprint: str | None = None,
        run: bool = True,
    ) -> Ticket: ...

    def reject(self, ticket_id: str, reason: str) -> Ticket: ...

    def run(self, ticket_id: str) -> Ticket: ...

    def cancel(self, ticket_id: str, reason: str | None = None) -> Ticket: ...

    def resolve(self, ticket_id: str, outcome: str, note: str | None = None) -> Ticket: ...


class Reviews:
    """An embedded queue worked by ``operator`` (asserted: embedded mode trusts its user).

    ``port`` is loaded only to approve-and-run or run a ticket, so listing and showing
    stay as cheap as opening the queue.
    """

    def __init__(self, queue: ReviewQueue, operator: str, port: Callable[[], Port]) -> None:
        self.queue = queue
        self.operator = operator
        self._port_factory = port
        self._port: Port | None = None

    def _runner(self) -> Port:
        if self._port is None:
            self._port = self._port_factory()
        return self._port

    def close(self) -> None:
        if self._port is not None:
            self._port.close()

    def list(
        self, state: str | None = None, limit: int = 50, after: str | None = None
    ) -> list[Ticket]:
        return self.queue.list(state=state, limit=limit, after=after)

    def show(self, ticket_id: str) -> Ticket:
        return self.queue.require(ticket_id)

    def status(self, ticket_id: str) -> dict[str, Any]:
        return self.queue.status(ticket_id)

    def approve(
        self,
        ticket_id: str,
        *,
        reason: str | None = None,
        fingerprint: str | None = None,
        run: bool = True,
    ) -> Ticket:
        return self._runner().approve(
            ticket_id, operator=self.operator, reason=reason, fingerprint=fingerprint, run=run
        )

    def reject(self, ticket_id: str, reason: str) -> Ticket:
        return self.queue.reject(ticket_id, self.operator, reason)

    def run(self, ticket_id: str) -> Ticket:
        return self._runner().execute(ticket_id, operator=self.operator)

    def cancel(self, ticket_id: str, reason: str | None = None) -> Ticket:
        return self.queue.cancel(ticket_id, self.operator, reason)

    def resolve(self, ticket_id: str, outcome: str, note: str | None = None) -> Ticket:
        return self.queue.resolve(ticket_id, self.operator, outcome, note)
