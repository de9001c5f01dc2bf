"""The kubelet-on-Docker translation used by the Helm e2e test: rendered objects → `docker run`.

A wrong translation would make the e2e test pass or fail for the harness's reasons instead of the
chart's, so the Kubernetes rules it copies (env order and `$(VAR)` expansion, security context,
quantities, volume kinds, command vs. args, probe ports) are pinned here without Docker.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubelet_objects import Objects, SpecError, container_env, expand, pod_template
from tests.e2e.kubelet_probes import Action, hooks, probe_plan
from tests.e2e.kubelet_spec import docker_run_args, non_root_violation, quantity

Obj = dict[str, Any]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config_map(name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def secret(name: str, **data: str) -> Obj:
    encoded = {k: b64(v) for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def deployment(container: Obj, **pod: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [container], **pod}}},
    }


OBJECTS = Objects.index(
    [
        config_map("llm-config", LLM_USVC_PORT="9000", SHARED="from-cm", MODEL="tiny"),
        secret("llm-secret", HF_TOKEN="hf_secret", SHARED="from-secret"),
        None,  # helm template emits empty documents
    ],
    namespace="rag",
)


def run_args(container: Obj, tmp_path: Path, **pod: Any) -> list[str]:
    spec = pod_template(deployment({"name": "app", "image": "img:1", **container}, **pod))
    return docker_run_args("llm-0", spec["containers"][0], spec, OBJECTS, tmp_path)


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)-$(B)", "1-2"),
        ("$$(A)", "$(A)"),  # escaped: the reference stays literal
        ("$$$(A)", "$1"),
        ("$(UNKNOWN)/x", "$(UNKNOWN)/x"),
        ("$(A", "$(A"),  # unclosed
        ("cost $5 and $", "cost $5 and $"),
        ("$()", "$()"),
    ],
)
def test_expand_follows_the_kubernetes_rules(text: str, expanded: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expanded


def test_env_from_comes_first_then_env_in_order_with_expansion() -> None:
    container = {
        "name": "app",
        "envFrom": [
            {"configMapRef": {"name": "llm-config"}, "prefix": "CM_"},
            {"configMapRef": {"name": "llm-config"}},
            {"secretRef": {"name": "llm-secret"}},  # later sources win
            {"secretRef": {"name": "absent", "optional": True}},
        ],
        "env": [
            {"name": "URL", "value": "http://$(POD_IP):$(LLM_USVC_PORT)/$(LATER)"},
            {"name": "LATER", "value": "late"},
            {"name": "ESCAPED", "value": "$$(MODEL)"},
            {"name": "MODEL", "value": "override-$(MODEL)"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NOT_EXPANDED", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k",
                                                                       "optional": True}}},
        ],
    }  # fmt: skip
    env = container_env(container, OBJECTS, "llm-0", {"EXTRA": "$(MODEL)"})
    assert env["CM_LLM_USVC_PORT"] == "9000"
    assert env["SHARED"] == "from-secret"
    assert env["HF_TOKEN"] == "hf_secret"  # base64-decoded
    # POD_IP is defined after URL, LATER after it too: both stay literal.
    assert env["URL"] == "http://$(POD_IP):9000/$(LATER)"
    assert env["ESCAPED"] == "$(MODEL)"
    assert env["MODEL"] == "override-tiny"
    assert (env["POD_IP"], env["POD"], env["NS"]) == ("127.0.0.1", "llm-0", "rag")
    assert "NOT_EXPANDED" not in env  # optional and missing: unset, not empty
    assert env["EXTRA"] == "$(MODEL)"  # the test's own values are verbatim


def test_key_refs_decode_secrets_and_honour_optional() -> None:
    def env_of(source: Obj) -> dict[str, str]:
        return container_env({"name": "c", "env": [{"name": "V", "valueFrom": source}]}, OBJECTS)

    assert env_of({"secretKeyRef": {"name": "llm-secret", "key": "HF_TOKEN"}}) == {"V": "hf_secret"}
    assert env_of({"configMapKeyRef": {"name": "llm-config", "key": "MODEL"}}) == {"V": "tiny"}
    assert env_of({"secretKeyRef": {"name": "llm-secret", "key": "nope", "optional": True}}) == {}
    with pytest.raises(SpecError, match="no key 'nope'"):
        env_of({"secretKeyRef": {"name": "llm-secret", "key": "nope"}})
    with pytest.raises(SpecError, match="was not rendered"):
        env_of({"configMapKeyRef": {"name": "absent", "key": "k"}})
    with pytest.raises(SpecError, match="resourceFieldRef"):
        env_of({"resourceFieldRef": {"resource": "limits.cpu"}})
    with pytest.raises(SpecError, match=r"metadata\.labels"):
        env_of({"fieldRef": {"fieldPath": "metadata.labels['app']"}})


def test_secret_string_data_wins_over_data() -> None:
    obj = secret("s", K="old")
    obj["stringData"] = {"K": "new"}
    assert Objects.index([obj]).secret_data("s") == {"K": "new"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", 2**30),
        ("1.5Gi", 1610612736),
        ("512Mi", 512 * 2**20),
        ("64Ki", 65536),
        ("2Ti", 2 * 2**40),
        ("129M", 129_000_000),
        ("129e6", 129_000_000),
        ("1k", 1000),
        ("128974848", 128974848),
        ("500m", 0.5),
        ("2", 2),
        ("0.25", 0.25),
    ],
)
def test_quantities(text: str, value: float) -> None:
    assert quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["12GB", "1.5 Gi", "Gi", "-", "1iB"])
def test_bad_quantities_are_refused(bad: str) -> None:
    with pytest.raises(SpecError, match="not a Kubernetes quantity"):
        quantity(bad)


@pytest.mark.parametrize(
    ("limits", "memory", "cpus"),
    [
        ({"memory": "1.5Gi", "cpu": "500m"}, "1610612736", "0.5"),
        ({"memory": "256M", "cpu": "2"}, "256000000", "2"),
        ({"cpu": "1500m"}, None, "1.5"),
    ],
)
def test_limits_become_memory_and_cpus(
    tmp_path: Path, limits: Obj, memory: str | None, cpus: str
) -> None:
    args = run_args({"resources": {"limits": limits, "requests": {"cpu": "9"}}}, tmp_path)
    assert flag_values(args, "--memory") == ([memory] if memory else [])
    assert flag_values(args, "--memory-swap") == ([memory] if memory else [])  # no swap
    assert flag_values(args, "--cpus") == [cpus]


def test_security_context_container_wins_over_pod(tmp_path: Path) -> None:
    pod_sc = {"runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 3000, "runAsNonRoot": True}
    hardened = {
        "runAsUser": 1000,
        "runAsGroup": 1001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    args = run_args({"securityContext": hardened}, tmp_path, securityContext=pod_sc)
    assert flag_values(args, "--user") == ["1000:1001"]
    assert flag_values(args, "--group-add") == ["3000"]
    assert "--read-only" in args
    assert flag_values(args, "--cap-drop") == ["ALL"]
    assert flag_values(args, "--cap-add") == ["NET_BIND_SERVICE"]
    assert flag_values(args, "--security-opt") == ["no-new-privileges"]  # no seccomp change
    assert args[:4] == ["--name", "llm-0-app", "--network", "host"]

    plain = run_args({}, tmp_path, securityContext={"runAsUser": 2000})
    assert flag_values(plain, "--user") == ["2000"]
    assert "--read-only" not in plain and "--security-opt" not in plain

    unconfined = {"seccompProfile": {"type": "Unconfined"}}
    args = run_args({"securityContext": unconfined}, tmp_path)
    assert flag_values(args, "--security-opt") == ["seccomp=unconfined"]


@pytest.mark.parametrize(
    ("security", "error"),
    [
        ({"runAsGroup": 5}, "runAsGroup without runAsUser"),
        ({"runAsUser": 0, "runAsNonRoot": True}, "runAsUser 0 with runAsNonRoot"),
        ({"seccompProfile": {"type": "Localhost"}}, "Localhost is not supported"),
        ({"seLinuxOptions": {"level": "s0"}}, "cannot honour seLinuxOptions"),
    ],
)
def test_security_contexts_it_cannot_honour(tmp_path: Path, security: Obj, error: str) -> None:
    with pytest.raises(SpecError, match=error):
        run_args({"securityContext": security}, tmp_path)


def test_run_as_non_root_is_checked_against_the_image_user() -> None:
    pod = {"securityContext": {"runAsNonRoot": True}}
    container = {"name": "c"}
    assert non_root_violation(container, pod, "1000") is None
    assert "runs as root" in (non_root_violation(container, pod, "") or "")
    assert "not numeric" in (non_root_violation(container, pod, "app") or "")
    assert non_root_violation({"name": "c", "securityContext": {"runAsUser": 7}}, pod, "") is None


def test_command_replaces_entrypoint_and_args_replace_cmd(tmp_path: Path) -> None:
    env = [{"name": "PORT", "value": "8008"}]
    both = run_args(
        {"command": ["python", "-m", "srv"], "args": ["--port", "$(PORT)", "$$(PORT)"], "env": env},
        tmp_path,
    )
    assert flag_values(both, "--entrypoint") == ["python"]
    assert both[both.index("img:1") :] == ["img:1", "-m", "srv", "--port", "8008", "$(PORT)"]

    only_args = run_args({"args": ["--port", "$(PORT)"], "env": env}, tmp_path)
    assert "--entrypoint" not in only_args  # the image's ENTRYPOINT stays
    assert only_args[-3:] == ["img:1", "--port", "8008"]

    neither = run_args({}, tmp_path)
    assert neither[-1] == "img:1" and "--entrypoint" not in neither


def test_env_reaches_docker_as_env_flags(tmp_path: Path) -> None:
    args = run_args({"envFrom": [{"secretRef": {"name": "llm-secret"}}]}, tmp_path)
    assert "HF_TOKEN=hf_secret" in flag_values(args, "--env")
    assert args.index("--env") < args.index("img:1")


def test_volumes_are_projected_and_mounted(tmp_path: Path) -> None:
    volumes = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "cfg", "configMap": {"name": "llm-config", "defaultMode": 0o440,
                                      "items": [{"key": "MODEL", "path": "sub/model.txt"}]}},
        {"name": "keys", "secret": {"secretName": "llm-secret"}},
        {"name": "cache", "persistentVolumeClaim": {"claimName": "hf-cache"}},
    ]  # fmt: skip
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "shm", "mountPath": "/dev/shm"},
        {"name": "cfg", "mountPath": "/etc/llm"},
        {"name": "keys", "mountPath": "/etc/keys"},
        {"name": "cache", "mountPath": "/data", "subPath": "hub"},
        {"name": "cache", "mountPath": "/ro", "readOnly": True},
    ]
    security = {"runAsUser": 1000, "fsGroup": 3000}
    args = run_args({"volumeMounts": mounts}, tmp_path, volumes=volumes, securityContext=security)
    pod_dir = tmp_path / "llm-0"
    assert flag_values(args, "--volume") == [
        f"{pod_dir}/tmp:/tmp",
        f"{pod_dir}/cfg:/etc/llm:ro",
        f"{pod_dir}/keys:/etc/keys:ro",
        f"{tmp_path}/pvc/hf-cache/hub:/data",
        f"{tmp_path}/pvc/hf-cache:/ro:ro",
    ]
    assert flag_values(args, "--tmpfs") == [f"/dev/shm:rw,exec,mode=1777,size={2**30}"]
    assert stat.S_IMODE((pod_dir / "tmp").stat().st_mode) == 0o777
    model = pod_dir / "cfg" / "sub" / "model.txt"
    assert model.read_text() == "tiny"
    assert stat.S_IMODE(model.stat().st_mode) == 0o440
    assert not (pod_dir / "cfg" / "LLM_USVC_PORT").exists()  # items select keys
    assert (pod_dir / "keys" / "HF_TOKEN").read_text() == "hf_secret"
    assert stat.S_IMODE((pod_dir / "keys" / "HF_TOKEN").stat().st_mode) == 0o644 | 0o440
    if os.geteuid() == 0:  # ownership is only applied when the runner can chown
        assert (pod_dir / "tmp").stat().st_uid == 1000
        assert (pod_dir / "tmp").stat().st_gid == 3000
        assert (pod_dir / "keys" / "HF_TOKEN").stat().st_gid == 3000


def test_a_claim_is_one_folder_shared_by_every_pod(tmp_path: Path) -> None:
    volumes = [{"name": "cache", "persistentVolumeClaim": {"claimName": "hf-cache"}}]
    container = {"name": "app", "image": "img:1",
                 "volumeMounts": [{"name": "cache", "mountPath": "/data"}]}  # fmt: skip
    spec = pod_template(deployment(container, volumes=volumes))
    docker_run_args("llm-a", container, spec, OBJECTS, tmp_path)
    (tmp_path / "pvc" / "hf-cache" / "model.bin").write_text("weights")
    args = docker_run_args("llm-b", container, spec, OBJECTS, tmp_path)
    assert flag_values(args, "--volume") == [f"{tmp_path}/pvc/hf-cache:/data"]
    assert (tmp_path / "pvc" / "hf-cache" / "model.bin").read_text() == "weights"


def test_a_stateful_set_claim_template_is_named_after_the_pod(tmp_path: Path) -> None:
    container = {"name": "vllm", "image": "img:1",
                 "volumeMounts": [{"name": "cache", "mountPath": "/data"}]}  # fmt: skip
    sts: Obj = {
        "kind": "StatefulSet",
        "metadata": {"name": "vllm"},
        "spec": {
            "template": {"spec": {"containers": [container]}},
            "volumeClaimTemplates": [{"metadata": {"name": "cache"}}],
        },
    }
    spec = pod_template(sts, "vllm-1")
    args = docker_run_args("vllm-1", container, spec, OBJECTS, tmp_path)
    assert flag_values(args, "--volume") == [f"{tmp_path}/pvc/cache-vllm-1:/data"]
    assert "volumes" not in sts["spec"]["template"]["spec"]  # the workload is left as rendered


@pytest.mark.parametrize(
    ("volume", "error"),
    [
        ({"hostPath": {"path": "/var/lib"}}, "hostPath is refused"),
        ({"nfs": {"server": "x", "path": "/"}}, "nfs is not supported"),
        ({"configMap": {"name": "absent"}}, "was not rendered"),
        ({"configMap": {"name": "llm-config", "items": [{"key": "x", "path": "x"}]}}, "no key"),
    ],
)
def test_volumes_it_cannot_honour(tmp_path: Path, volume: Obj, error: str) -> None:
    with pytest.raises(SpecError, match=error):
        run_args(
            {"volumeMounts": [{"name": "v", "mountPath": "/v"}]},
            tmp_path,
            volumes=[{"name": "v", **volume}],
        )


def test_fields_with_no_effect_on_one_host_are_accepted_others_refused(tmp_path: Path) -> None:
    run_args(
        {"imagePullPolicy": "Never", "ports": [{"containerPort": 80}], "lifecycle": {}},
        tmp_path,
        affinity={},
        tolerations=[],
        nodeSelector={},
        topologySpreadConstraints=[],
        priorityClassName="high",
        terminationGracePeriodSeconds=60,
        serviceAccountName="sa",
        automountServiceAccountToken=False,
    )
    with pytest.raises(SpecError, match="cannot honour hostPID"):
        run_args({}, tmp_path, hostPID=True)
    with pytest.raises(SpecError, match="cannot honour volumeDevices"):
        run_args({"volumeDevices": []}, tmp_path)
    with pytest.raises(SpecError, match=r"cannot honour habana\.ai/gaudi"):
        run_args({"resources": {"limits": {"habana.ai/gaudi": 1}}}, tmp_path)


def test_probes_resolve_named_ports_and_keep_kubernetes_defaults() -> None:
    container = {
        "name": "vllm",
        "ports": [{"name": "http", "containerPort": 8008}, {"containerPort": 9090}],
        "startupProbe": {"httpGet": {"path": "/health", "port": "http"},
                         "periodSeconds": 5, "failureThreshold": 120},
        "readinessProbe": {"httpGet": {"path": "/v1/models", "port": 8008, "scheme": "HTTP",
                                       "httpHeaders": [{"name": "Authorization", "value": "k"}]},
                           "timeoutSeconds": 3, "successThreshold": 2},
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "initialDelaySeconds": 7},
    }  # fmt: skip
    plan = probe_plan(container)
    assert plan.startup is not None and plan.readiness is not None and plan.liveness is not None
    assert plan.startup.action == Action("httpGet", 8008, "/health")
    assert (plan.startup.period_s, plan.startup.failure_threshold) == (5, 120)
    assert (plan.startup.timeout_s, plan.startup.success_threshold) == (1, 1)  # defaults
    assert plan.readiness.action.headers == (("Authorization", "k"),)
    assert (plan.readiness.timeout_s, plan.readiness.success_threshold) == (3, 2)
    assert plan.liveness.action == Action("exec", command=("cat", "/tmp/alive"))
    assert (plan.liveness.initial_delay_s, plan.liveness.period_s) == (7, 10)
    tcp = probe_plan({"name": "c", "readinessProbe": {"tcpSocket": {"port": 6379}}})
    assert tcp.readiness is not None and tcp.readiness.action == Action("tcpSocket", 6379)
    assert probe_plan({"name": "c"}).startup is None


@pytest.mark.parametrize(
    ("probe", "error"),
    [
        ({"httpGet": {"path": "/", "port": "metrics"}}, "no container port named 'metrics'"),
        ({"grpc": {"port": 9000}}, "cannot honour handler"),
        ({"httpGet": {"port": 80, "host": "10.0.0.1"}}, "is not this pod"),
    ],
)
def test_probes_it_cannot_honour(probe: Obj, error: str) -> None:
    with pytest.raises(SpecError, match=error):
        probe_plan({"name": "c", "ports": [{"name": "http", "containerPort": 80}],
                    "livenessProbe": probe})  # fmt: skip


def test_lifecycle_hooks_are_returned_separately() -> None:
    container = {"name": "c", "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}
    assert hooks(container) == (None, Action("exec", command=("sleep", "5")))
    sleeping = {"name": "c", "lifecycle": {"preStop": {"sleep": {"seconds": 3}}}}
    assert hooks(sleeping) == (None, Action("sleep", seconds=3))


def test_pod_templates_of_each_workload_kind() -> None:
    pod = {"containers": [{"name": "c", "image": "i"}]}
    for kind in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        workload = {"kind": kind, "metadata": {"name": "w"}, "spec": {"template": {"spec": pod}}}
        assert pod_template(workload)["containers"] == pod["containers"]
    cron = {"kind": "CronJob", "metadata": {"name": "w"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}}  # fmt: skip
    assert pod_template(cron)["containers"] == pod["containers"]
    with pytest.raises(SpecError, match="Service svc has no pod template"):
        pod_template({"kind": "Service", "metadata": {"name": "svc"}, "spec": {}})


def test_objects_index_refuses_duplicates() -> None:
    with pytest.raises(SpecError, match="ConfigMap a is rendered twice"):
        Objects.index([config_map("a"), config_map("a")])
    assert OBJECTS.get("ConfigMap", "llm-config")["data"]["MODEL"] == "tiny"
    assert [obj["metadata"]["name"] for obj in OBJECTS.of_kind("Secret")] == ["llm-secret"]
