"""Static checks of the monitoring stack (docker/monitoring/): promtool accepts the Prometheus
config and every dashboard query, the dashboard's panels each have a data source and queries of
metrics the services export, the Compose file renders with a healthcheck on every service, and
the installer of the test services is clean. Each check is also shown failing on a broken
sample. Running every query against real servers: tests/integration/monitoring/."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import prometheus
from harness.processes import REPO_ROOT
from harness.prometheus import DashboardQuery, dashboard_queries, panels
from microservice.auth.metrics import KeyMetrics
from microservice.observability.metrics import Metrics
from microservice.routing.metrics import RoutingMetrics
from tests.static import checks
from tests.static.checks import STACKS

MONITORING = REPO_ROOT / "docker" / "monitoring"
COMPOSE = MONITORING / "compose.yaml"
ENV_FILE = MONITORING / ".env"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "llm-stack.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"
INSTALLER = REPO_ROOT / "scripts" / "install_test_services.sh"

# What the dashboard must show (the list): one metric of each, in some query.
REQUIRED_METRICS = {
    "requests by status": "llm_usvc_requests_total",
    "time to first token": "llm_usvc_time_to_first_token_seconds_bucket",
    "tokens/s": "llm_usvc_generated_tokens_total",
    "per-replica in flight": "llm_usvc_replica_in_flight",
    "per-replica engine load": "llm_usvc_replica_running",
    "queue depth": "llm_usvc_queue_depth",
    "queue wait": "llm_usvc_queue_wait_seconds_bucket",
    "admission 429s": "llm_usvc_rejected_total",
    "per-key 429s": "llm_usvc_key_rate_limited_total",
    "per-key requests": "llm_usvc_key_requests_total",
    "per-key prompt tokens": "llm_usvc_key_prompt_tokens_total",
    "per-key completion tokens": "llm_usvc_key_completion_tokens_total",
    "vLLM engine": "vllm:num_requests_running",
    "per-replica prefix-cache hits": "llm_usvc_replica_prefix_cache_hits",
    "routing decisions by reason": "llm_usvc_routing_decisions_total",
}
# Exact version tags: no latest, no bare major or minor.
PINNED_IMAGE = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+$")
_METRIC = re.compile(r"\b(llm_usvc_[a-z_]+|vllm:[a-z_]+)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        binary = prometheus.binary("promtool")
    except FileNotFoundError as error:
        pytest.fail(str(error))
    result: subprocess.CompletedProcess[str] = checks.run([binary, *args], env=checks.clean_env())
    return result


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


# --- Prometheus config ---


def test_promtool_accepts_the_prometheus_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_refuses_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "prometheus.yml"
    broken.write_text(
        PROMETHEUS_CONFIG.read_text().replace("scrape_interval: 5s", "scrape_interval: 5")
    )
    assert promtool("check", "config", str(broken)).returncode != 0


def scrape_targets(config_path: Path) -> dict[str, list[str]]:
    config = yaml.safe_load(config_path.read_text())
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_scrapes_the_ports_the_stack_listens_on(stack: str) -> None:
    env = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "docker" / stack / ".env").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    targets = scrape_targets(PROMETHEUS_CONFIG)
    assert targets["llm-usvc"] == [f"127.0.0.1:{env['LLM_USVC_PORT']}"]
    assert targets["vllm"] == [f"127.0.0.1:{env['LLM_VLLM_PORT']}"]


# --- the dashboard ---


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    """Panels without a Prometheus data source or without a query; a data source variable that
    is used but not defined; ids used twice."""
    problems = []
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    rows = [p for p in dashboard.get("panels", []) if p.get("type") == "row"]
    ids = [p.get("id") for p in rows + panels(dashboard)]
    if len(set(ids)) != len(ids):
        problems.append("two panels share an id")
    for panel in panels(dashboard):
        title = panel.get("title", f"panel {panel.get('id')}")
        source = panel.get("datasource") or {}
        if source.get("type") != "prometheus" or not source.get("uid"):
            problems.append(f"{title}: no Prometheus data source")
        uid = str(source.get("uid", ""))
        if uid.startswith("$") and uid.strip("${}") not in variables:
            problems.append(f"{title}: data source variable {uid} is not defined")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{title}: no query")
        for target in targets:
            if not str(target.get("expr", "")).strip():
                problems.append(f"{title} {target.get('refId')}: a target without expr")
            if (target.get("datasource") or source) != source:
                problems.append(f"{title} {target.get('refId')}: another data source")
    return problems


def test_the_dashboard_parses_and_each_panel_has_a_datasource_and_queries() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "llm-stack"
    assert len(panels(dashboard)) >= 10
    assert dashboard_problems(dashboard) == []


def test_dashboard_problems_are_found() -> None:
    source = {"type": "prometheus", "uid": "${datasource}"}
    broken = {
        "templating": {"list": []},
        "panels": [
            {"id": 1, "type": "row", "title": "a row", "panels": []},
            {"id": 2, "type": "timeseries", "title": "no source", "targets": [{"expr": "up"}]},
            {"id": 3, "type": "timeseries", "title": "no query", "datasource": source},
            {
                "id": 4,
                "type": "stat",
                "title": "empty expr",
                "datasource": {"type": "prometheus", "uid": "x"},
                "targets": [{"refId": "A", "expr": " "}],
            },
        ],
    }
    assert dashboard_problems(broken) == [
        "no source: no Prometheus data source",
        "no query: data source variable ${datasource} is not defined",
        "no query: no query",
        "empty expr A: a target without expr",
    ]


def rules_file(queries: list[DashboardQuery], path: Path) -> Path:
    """Each query as a recording rule, so that promtool parses it offline."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": query.runnable()}
        for i, query in enumerate(queries)
    ]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    queries = dashboard_queries(DASHBOARD)
    result = promtool("check", "rules", str(rules_file(queries, tmp_path / "rules.yml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_promtool_refuses_a_bad_query(tmp_path: Path) -> None:
    bad = [DashboardQuery("p", "A", "sum by (le (rate(x[$__rate_interval]))")]
    assert promtool("check", "rules", str(rules_file(bad, tmp_path / "rules.yml"))).returncode


def test_an_unknown_grafana_variable_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Grafana variable"):
        DashboardQuery("p", "A", 'up{job="$job"}').runnable()
    assert DashboardQuery("p", "A", "rate(x[${__rate_interval}])").runnable("2m") == "rate(x[2m])"


def exported_names() -> set[str]:
    """The series names the microservice's registry exports (counters with ``_total``,
    histograms with ``_bucket``, ``_count`` and ``_sum``)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names = set()
    metrics = Metrics()  # the app's registry, with the metrics of routing and keys in it
    RoutingMetrics(metrics.registry)
    KeyMetrics(metrics.registry)
    for family in metrics.registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def unknown_metrics(queries: list[DashboardQuery], exported: set[str]) -> list[str]:
    used = {name for q in queries for name in _METRIC.findall(q.expr)}
    return sorted(n for n in used if n.startswith("llm_usvc_") and n not in exported)


def test_every_microservice_metric_the_dashboard_reads_is_exported() -> None:
    assert unknown_metrics(dashboard_queries(DASHBOARD), exported_names()) == []


def test_an_unknown_metric_is_found() -> None:
    queries = [DashboardQuery("p", "A", "sum(rate(llm_usvc_request_total[1m]))")]
    assert unknown_metrics(queries, exported_names()) == ["llm_usvc_request_total"]


def test_the_dashboard_shows_what_the_operators_need() -> None:
    used = {name for q in dashboard_queries(DASHBOARD) for name in _METRIC.findall(q.expr)}
    missing = {what: name for what, name in REQUIRED_METRICS.items() if name not in used}
    assert missing == {}
    ttft = [q.expr for q in dashboard_queries(DASHBOARD) if "time_to_first_token" in q.expr]
    assert ttft and all(e.startswith("histogram_quantile(") for e in ttft)


# --- Grafana provisioning ---


def test_grafana_provisions_the_datasource_and_the_dashboard(tmp_path: Path) -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    [source] = sources["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "${PROMETHEUS_URL}",
        True,
    )
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "llm-stack.yaml").read_text())
    [provider] = providers["providers"]
    grafana = checks.rendered(COMPOSE, env_with_password(tmp_path))["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent
    assert mounts["/etc/grafana/provisioning"] == PROVISIONING
    environment = grafana["environment"]
    assert environment["PROMETHEUS_URL"] == "http://127.0.0.1:9090"
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"


# --- the Compose file ---


def env_with_password(folder: Path) -> Path:
    """docker/monitoring/.env with a Grafana password (the file leaves it empty on purpose)."""
    text = ENV_FILE.read_text()
    assert "GRAFANA_ADMIN_PASSWORD=\n" in text
    env_file = folder / "monitoring.env"
    env_file.write_text(text.replace("GRAFANA_ADMIN_PASSWORD=\n", "GRAFANA_ADMIN_PASSWORD=pw\n"))
    return env_file


def compose_problems(config: dict[str, Any]) -> list[str]:
    """Services without a healthcheck, with an image not pinned to an exact version, running
    as root, or off the host network (where the stack's ports are)."""
    problems = []
    for name, service in config["services"].items():
        check = service.get("healthcheck") or {}
        if not check.get("test") or check.get("disable"):
            problems.append(f"{name}: no healthcheck")
        if not PINNED_IMAGE.match(service.get("image", "")):
            problems.append(f"{name}: image {service.get('image')} is not pinned to a version")
        if str(service.get("user", "0")).split(":")[0] in {"0", "root"}:
            problems.append(f"{name}: runs as root")
        if service.get("network_mode") != "host":
            problems.append(f"{name}: not on the host network")
    return problems


def test_the_compose_file_renders_and_every_service_has_a_healthcheck(tmp_path: Path) -> None:
    config = checks.rendered(COMPOSE, env_with_password(tmp_path))
    assert set(config["services"]) == {"prometheus", "grafana"}
    assert compose_problems(config) == []
    assert config["services"]["grafana"]["depends_on"]["prometheus"]["condition"] == (
        "service_healthy"
    )
    assert checks.healthy_dependencies_without_healthcheck(config) == []
    command = config["services"]["prometheus"]["command"]
    assert "--web.listen-address=127.0.0.1:9090" in command


def test_compose_problems_are_found(tmp_path: Path) -> None:
    folder = tmp_path / "monitoring"
    shutil.copytree(MONITORING, folder)
    compose = folder / "compose.yaml"
    text = compose.read_text()
    text = text.replace("prom/prometheus:v2.53.3", "prom/prometheus:latest")
    text = text.replace('user: "472:0"', 'user: "0:0"')
    text = re.sub(r"(?s)(  grafana:.*?)    healthcheck:.*?start_interval: 2s\n", r"\1", text)
    compose.write_text(text)
    config = checks.rendered(compose, env_with_password(tmp_path))
    assert sorted(compose_problems(config)) == [
        "grafana: no healthcheck",
        "grafana: runs as root",
        "prometheus: image prom/prometheus:latest is not pinned to a version",
    ]


def test_the_compose_file_needs_a_grafana_password() -> None:
    result = checks.compose_config(COMPOSE, ENV_FILE)
    assert result.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr


def test_the_env_file_lists_every_variable_compose_reads() -> None:
    read = {m.group(1) for m in checks._VARIABLE.finditer(COMPOSE.read_text())}
    assert read - {"COMPOSE_PROJECT_NAME"} <= checks.env_keys(ENV_FILE)


def test_the_compose_file_passes_the_compose_spec_schema() -> None:
    result = checks.compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(REPO_ROOT) for p in MONITORING.rglob("*.y*ml")), ids=str
)
def test_yamllint(path: Path) -> None:
    result = checks.yamllint(REPO_ROOT / path)
    assert result.returncode == 0, result.stdout


# --- the installer of the test services ---


def test_the_installer_is_shellcheck_clean() -> None:
    result = checks.shellcheck(INSTALLER)
    assert result.returncode == 0, result.stdout


def test_the_installer_does_nothing_quickly_when_everything_is_there() -> None:
    missing = [b for b in ("prometheus", "promtool", "redis-server") if not shutil.which(b)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: the installer would install them")
    started = time.monotonic()
    result = checks.run(["bash", str(INSTALLER)], env=checks.clean_env())
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert time.monotonic() - started < 5
