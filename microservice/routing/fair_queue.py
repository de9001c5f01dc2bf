"""The order the waiting room serves its requests in.

- Priority classes first: a ``batch`` request is served only when no ``interactive`` one waits.
- Inside a class, weighted fair queuing between tenants (API keys): each request is tagged with
  its tenant's virtual finish time, ``max(class's virtual time, tenant's last tag) + 1/weight``,
  and the smallest tag is served next (ties: the earlier request). The class's virtual time is
  the tag last served.

A tenant that floods the room queues behind its own requests: its tags run ahead of the virtual
time, so a tenant that arrives with one request is served after at most one of the flood's. A
tenant waiting alone gets every slot (work-conserving), and over a busy stretch tenants get
slots in proportion to their weights.

When the room is full, the request to refuse is the last in line: the largest tag of the lowest
class that waits. A newcomer ahead of it takes its place (``last_in_line``), so batch requests
are refused first and a flood is refused before a tenant sending at a steady pace.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from microservice.config.keys_file import PRIORITY_CLASSES, PriorityClass
from microservice.upstream.model_call import Tenant

RANK = {name: rank for rank, name in enumerate(PRIORITY_CLASSES)}  # 0 is served first


@dataclass(eq=False, slots=True)
class Ticket:
    """One request's place: its tag, kept when it is woken and has to wait again."""

    tenant: Tenant
    tag: float
    order: int
    future: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def priority(self) -> PriorityClass:
        return self.tenant.priority

    def ahead_of(self, other: Ticket) -> bool:
        mine, theirs = RANK[self.priority], RANK[other.priority]
        if mine != theirs:
            return mine < theirs
        return (self.tag, self.order) < (other.tag, other.order)


class _ClassLine:
    """One priority class: a line per tenant, each in tag order."""

    __slots__ = ("last_tag", "lines", "virtual_time")

    def __init__(self) -> None:
        self.lines: dict[str, collections.deque[Ticket]] = {}
        self.last_tag: dict[str, float] = {}
        self.virtual_time = 0.0

    def next_tag(self, tenant: Tenant) -> float:
        start = max(self.virtual_time, self.last_tag.get(tenant.name, 0.0))
        return start + 1.0 / tenant.weight

    def first(self) -> Ticket | None:
        heads = [line[0] for line in self.lines.values()]
        return min(heads, key=lambda t: (t.tag, t.order), default=None)

    def last(self) -> Ticket | None:
        tails = [line[-1] for line in self.lines.values()]
        return max(tails, key=lambda t: (t.tag, t.order), default=None)

    def remove(self, ticket: Ticket) -> None:
        name = ticket.tenant.name
        line = self.lines[name]
        line.remove(ticket)
        if not line:
            del self.lines[name]
        if not self.lines:  # nobody waits: no tenant is ahead of or behind another
            self.last_tag.clear()


class FairQueue:
    def __init__(self) -> None:
        self._classes = {name: _ClassLine() for name in PRIORITY_CLASSES}
        self._order = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def ticket(self, tenant: Tenant) -> Ticket:
        """A place for a newcomer, not yet in line (``join`` puts it there)."""
        self._order += 1
        return Ticket(tenant, self._classes[tenant.priority].next_tag(tenant), self._order)

    def join(self, ticket: Ticket) -> None:
        """In line at the place its tag gives it (at the front of its tenant's line when it
        comes back after a wake-up that found no slot)."""
        line_of = self._classes[ticket.priority]
        line = line_of.lines.setdefault(ticket.tenant.name, collections.deque())
        if line and (ticket.tag, ticket.order) < (line[0].tag, line[0].order):
            line.appendleft(ticket)
        else:
            line.append(ticket)
        name = ticket.tenant.name
        line_of.last_tag[name] = max(line_of.last_tag.get(name, 0.0), ticket.tag)
        self._size += 1

    def leave(self, ticket: Ticket) -> bool:
        """Out of line (served, timed out, refused); False if it was not in line."""
        line_of = self._classes[ticket.priority]
        line = line_of.lines.get(ticket.tenant.name)
        if line is None or ticket not in line:
            return False
        line_of.remove(ticket)
        self._size -= 1
        return True

    def next_up(self) -> Ticket | None:
        """The ticket to serve next, taken out of line; the class's virtual time moves to it."""
        for line_of in self._classes.values():
            ticket = line_of.first()
            if ticket is not None:
                line_of.virtual_time = max(line_of.virtual_time, ticket.tag)
                self.leave(ticket)
                return ticket
        return None

    def last_in_line(self) -> Ticket | None:
        """The ticket that would be served last: refused first when the room is full."""
        for name in reversed(PRIORITY_CLASSES):
            ticket = self._classes[name].last()
            if ticket is not None:
                return ticket
        return None

    def any_at_or_above(self, priority: PriorityClass) -> bool:
        """Whether a request of this class or a higher one waits (a newcomer must queue)."""
        rank = RANK[priority]
        return any(self._classes[name].lines for name in PRIORITY_CLASSES[: rank + 1])
