"""A labelled Prometheus metric's children, looked up once per label values.

``prometheus_client``'s ``labels()`` takes a lock and checks and joins its arguments on every
call; the request path looks its children up here instead. The children are the metric's own,
so what is exported does not change; ``forget`` drops one that the metric itself forgot (a
replica that left).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


class MetricChildren(Generic[M]):
    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child

    def forget(self, *values: str) -> None:
        self._children.pop(values, None)
