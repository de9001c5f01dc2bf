"""The chart tier: the real helm renders and lints the chart; nothing needs a cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helm.chart import Helm


@pytest.fixture(scope="session")
def helm() -> Iterator[Helm]:
    runner = Helm()
    yield runner
    runner.close()
