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
class Place:
    """One request's place: its tag, kept when it is woken and has to wait again."""

    tenant: Tenant
    tag: float
    order: int
    future: asyncio.Future[None] | None = field(default=None, repr=False)
    in_line: bool = False

    @property
    def priority(self) -> PriorityClass:
        return self.tenant.priority

    @property
    def key(self) -> tuple[float, int]:
        """Its order within its class: the smaller tag first, the earlier request on a tie."""
        return self.tag, self.order

    def ahead_of(self, other: Place) -> bool:
        mine, theirs = RANK[self.priority], RANK[other.priority]
        if mine != theirs:
            return mine < theirs
        return self.key < other.key


class _ClassLine:
    """One priority class: a line per tenant, each in tag order."""

    __slots__ = ("last_tag", "lines", "virtual_time")

    def __init__(self) -> None:
        self.lines: dict[str, collections.deque[Place]] = {}
        self.last_tag: dict[str, float] = {}
        self.virtual_time = 0.0

    def next_tag(self, tenant: Tenant) -> float:
        start = max(self.virtual_time, self.last_tag.get(tenant.name, 0.0))
        return start + 1.0 / tenant.weight

    def first(self) -> Place | None:
        heads = [line[0] for line in self.lines.values()]
        return min(heads, key=lambda p: p.key, default=None)

    def last(self) -> Place | None:
        tails = [line[-1] for line in self.lines.values()]
        return max(tails, key=lambda p: p.key, default=None)

    def remove(self, place: Place) -> None:
        name = place.tenant.name
        line = self.lines[name]
        line.remove(place)
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

    def place(self, tenant: Tenant) -> Place:
        """A place for a newcomer, not yet in line (``join`` puts it there)."""
        self._order += 1
        return Place(tenant, self._classes[tenant.priority].next_tag(tenant), self._order)

    def join(self, place: Place) -> None:
        """In line at the place its tag gives it (at the front of its tenant's line when it
        comes back after a wake-up that found no slot)."""
        line_of = self._classes[place.priority]
        line = line_of.lines.setdefault(place.tenant.name, collections.deque())
        if line and place.key < line[0].key:
            line.appendleft(place)
        else:
            line.append(place)
        place.in_line = True
        name = place.tenant.name
        line_of.last_tag[name] = max(line_of.last_tag.get(name, 0.0), place.tag)
        self._size += 1

    def leave(self, place: Place) -> bool:
        """Out of line (served, timed out, refused); False if it was not in line."""
        if not place.in_line:
            return False
        self._classes[place.priority].remove(place)
        place.in_line = False
        self._size -= 1
        return True

    def next_up(self) -> Place | None:
        """The place to serve next, taken out of line; the class's virtual time moves to it."""
        for line_of in self._classes.values():
            place = line_of.first()
            if place is not None:
                line_of.virtual_time = max(line_of.virtual_time, place.tag)
                self.leave(place)
                return place
        return None

    def last_in_line(self) -> Place | None:
        """The place that would be served last: refused first when the room is full."""
        for name in reversed(PRIORITY_CLASSES):
            place = self._classes[name].last()
            if place is not None:
                return place
        return None

    def any_at_or_above(self, priority: PriorityClass) -> bool:
        """Whether a request of this class or a higher one waits (a newcomer must queue)."""
        rank = RANK[priority]
        return any(self._classes[name].lines for name in PRIORITY_CLASSES[: rank + 1])
