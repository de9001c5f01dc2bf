"""A real Prometheus (Debian's ``prometheus`` package) as a child process on a free loopback
port, scraping given targets every second, with its storage in a folder of the caller's;
instant PromQL queries through its HTTP API; and the queries of a Grafana dashboard, made
runnable as such."""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from harness.processes import Server, free_port, running

SCRAPE_INTERVAL = "1s"
START_TIMEOUT_S = 60
INSTALL_HINT = "install it with scripts/install_test_services.sh (Debian's prometheus package)"

# One result of an instant query: {"metric": {label: value}, "value": [time, "number"]}.
Sample = dict[str, Any]


def binary(name: str = "prometheus") -> str:
    """The path of ``prometheus`` or ``promtool``; FileNotFoundError naming the installer."""
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if path is None:
        raise FileNotFoundError(f"{name} not found: {INSTALL_HINT}")
    return path


def scrape_config(jobs: Mapping[str, Sequence[str]], interval: str = SCRAPE_INTERVAL) -> str:
    """A prometheus.yml scraping each job's targets (``host:port`` or base URLs) at
    ``interval``, on their ``/metrics``."""
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "static_configs": [{"targets": [host_port(t) for t in targets]}],
                }
                for job, targets in jobs.items()
            ],
        },
        sort_keys=False,
    )


def host_port(target: str) -> str:
    """``http://127.0.0.1:8008`` → ``127.0.0.1:8008``; ``host:port`` as it is."""
    if "://" not in target:
        return target
    parts = urlsplit(target)
    if parts.path not in ("", "/"):
        raise ValueError(f"{target}: a target is scraped on /metrics, give no path")
    return parts.netloc


class QueryError(RuntimeError):
    """Prometheus refused a query (bad PromQL, timeout): its own message."""


@dataclass
class Prometheus:
    server: Server
    targets: int  # how many targets it scrapes

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def query(self, expr: str) -> list[Sample]:
        """The result of the instant query ``expr`` now (a vector; a scalar as one sample)."""
        response = httpx.get(f"{self.base_url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise QueryError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[Sample] = data["result"]
        if data["resultType"] == "matrix":  # a range selector: its last sample per series
            return [{"metric": s["metric"], "value": s["values"][-1]} for s in result]
        return result

    def wait_for(
        self,
        expr: str,
        accept: Callable[[list[Sample]], bool] = bool,
        timeout_s: float = 30,
    ) -> list[Sample]:
        """Poll ``expr`` until ``accept`` takes its result (by default: any result)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if accept(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr}: {result!r} after {timeout_s}s")
            time.sleep(0.5)

    def wait_for_scrapes(self, scrapes: int, timeout_s: float = 30) -> None:
        """Until every target has been scraped successfully at least ``scrapes`` times in the
        last minute (a target down fails here, with Prometheus' own reason). Prometheus
        starts scraping some 5 s after it is ready (its discovery sends updates that often)."""

        def all_up(result: list[Sample]) -> bool:
            return len(result) == self.targets and all(s["value"][1] == "1" for s in result)

        try:
            self.wait_for("up", all_up, timeout_s)
            self.wait_for(f"min(sum_over_time(up[1m])) >= {scrapes}", timeout_s=timeout_s)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\ntargets: {self.target_errors()}") from None

    def wait_for_scrape_after(self, unix_time: float, timeout_s: float = 30) -> None:
        """Until every target has been scraped again since ``unix_time`` (``time.time()``)."""
        self.wait_for(f"min(timestamp(up)) > {unix_time:.3f}", timeout_s=timeout_s)

    def target_errors(self) -> dict[str, str]:
        """Each active target's scrape URL → its health and last error."""
        targets = httpx.get(f"{self.base_url}/api/v1/targets", timeout=10).json()["data"]
        return {
            t["scrapeUrl"]: f"{t['health']} {t.get('lastError', '')}".strip()
            for t in targets["activeTargets"]
        }


def finite(result: list[Sample]) -> bool:
    """A result with at least one sample, every one a number (not NaN, which a quantile of no
    observations is)."""
    return bool(result) and all(not math.isnan(float(s["value"][1])) for s in result)


# Grafana's interval variables, as $__name or ${__name}.
_GRAFANA_INTERVAL = re.compile(
    r"\$(?:__(rate_interval|interval|range)\b|\{__(rate_interval|interval|range)\})"
)


@dataclass(frozen=True)
class DashboardQuery:
    panel: str
    ref_id: str
    expr: str  # as the dashboard has it, Grafana variables and all

    def runnable(self, interval: str = "1m") -> str:
        """The expression with Grafana's interval variables replaced by ``interval``;
        ValueError for any other variable (it would need a value of its own)."""
        expr = _GRAFANA_INTERVAL.sub(interval, self.expr)
        if "$" in expr:
            raise ValueError(f"{self.panel} {self.ref_id}: unknown Grafana variable in {expr}")
        return expr


def panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel of a dashboard, those nested in collapsed rows too (rows themselves not)."""
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def dashboard_queries(path: Path) -> list[DashboardQuery]:
    """The PromQL of every target of every panel of the dashboard JSON at ``path``."""
    dashboard = json.loads(path.read_text())
    return [
        DashboardQuery(panel.get("title", f"panel {panel.get('id')}"), target["refId"], expr)
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if (expr := target.get("expr"))
    ]


@contextlib.contextmanager
def prometheus(
    jobs: Mapping[str, Sequence[str]], workdir: Path, log_path: Path
) -> Iterator[Prometheus]:
    """``prometheus`` scraping ``jobs`` (job name → targets) every second, its config and TSDB
    under ``workdir``, on a free loopback port; yields once ``/-/ready`` answers, stops it by
    PID when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(scrape_config(jobs))
    port = free_port()
    args = [
        binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    with running(args, {}, port, log_path, "/-/ready", START_TIMEOUT_S) as server:
        yield Prometheus(server, sum(len(targets) for targets in jobs.values()))
