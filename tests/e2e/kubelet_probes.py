"""A container's probes and lifecycle hooks as a kubelet runs them, with Kubernetes' defaults."""

from __future__ import annotations

from dataclasses import dataclass

from tests.e2e.kubelet_objects import Obj, SpecError, refuse_unknown


@dataclass(frozen=True)
class Action:
    """What a probe or lifecycle hook does: httpGet, tcpSocket, exec or sleep (hooks only)."""

    kind: str
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    seconds: int = 0


@dataclass(frozen=True)
class Probe:
    """One probe with the Kubernetes defaults for the timing fields it leaves out."""

    action: Action
    initial_delay_s: int = 0
    period_s: int = 10
    timeout_s: int = 1
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True)
class ProbePlan:
    startup: Probe | None
    readiness: Probe | None
    liveness: Probe | None


def container_ports(container: Obj) -> dict[str, int]:
    """Named container ports (name → containerPort); unnamed ones under their number."""
    return {str(p.get("name", p["containerPort"])): p["containerPort"]
            for p in container.get("ports") or []}  # fmt: skip


def _action(where: str, spec: Obj, container: Obj, allow_sleep: bool = False) -> Action:
    kinds = [k for k in ("httpGet", "tcpSocket", "exec", "sleep", "grpc") if k in spec]
    if len(kinds) != 1 or kinds[0] == "grpc" or (kinds[0] == "sleep" and not allow_sleep):
        raise SpecError(f"{where}: cannot honour handler {kinds or 'none'}")
    kind, body = kinds[0], spec[kinds[0]]
    if kind == "exec":
        return Action(kind, command=tuple(str(part) for part in body["command"]))
    if kind == "sleep":
        return Action(kind, seconds=int(body["seconds"]))
    if body.get("host") not in (None, "", "127.0.0.1", "localhost"):
        raise SpecError(f"{where}: host {body['host']!r} is not this pod")
    port = body["port"]
    if isinstance(port, str):
        ports = container_ports(container)
        if port not in ports:
            raise SpecError(f"{where}: no container port named {port!r}")
        port = ports[port]
    if kind == "tcpSocket":
        return Action(kind, port=int(port))
    headers = tuple((h["name"], h["value"]) for h in body.get("httpHeaders") or [])
    return Action(kind, int(port), body.get("path") or "/", body.get("scheme", "HTTP"), headers)


def probe_plan(container: Obj) -> ProbePlan:
    """The container's startup, readiness and liveness probes, named ports resolved."""

    def one(key: str) -> Probe | None:
        spec = container.get(key)
        if not spec:
            return None
        where = f"container {container['name']} {key}"
        return Probe(
            _action(where, spec, container),
            initial_delay_s=spec.get("initialDelaySeconds", 0),
            period_s=spec.get("periodSeconds", 10),
            timeout_s=spec.get("timeoutSeconds", 1),
            failure_threshold=spec.get("failureThreshold", 3),
            success_threshold=spec.get("successThreshold", 1),
        )

    return ProbePlan(one("startupProbe"), one("readinessProbe"), one("livenessProbe"))


def hooks(container: Obj) -> tuple[Action | None, Action | None]:
    """(postStart, preStop) lifecycle handlers."""
    lifecycle = container.get("lifecycle") or {}
    refuse_unknown(f"container {container['name']} lifecycle", lifecycle,
                    {"postStart", "preStop", "stopSignal"})  # fmt: skip
    if lifecycle.get("stopSignal", "SIGTERM") != "SIGTERM":
        raise SpecError(f"container {container['name']}: stopSignal is not supported")
    name = container["name"]
    post_start, pre_stop = (lifecycle.get(key) for key in ("postStart", "preStop"))
    return (
        _action(f"container {name} postStart", post_start, container, True) if post_start else None,
        _action(f"container {name} preStop", pre_stop, container, True) if pre_stop else None,
    )
