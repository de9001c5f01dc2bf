"""What the values allow: wrong ones stop helm with the path and the rule; FP8 wires the job's
output to exactly what vLLM reads; secrets never appear as values."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config_loading import load
from fp8_quant.layout import MANIFEST_FILE
from fp8_quant.settings import Fp8Settings
from model_server.settings import ModelServerSettings
from tests.helm.chart import FP8_SETS, GAUDI_VALUES, Helm, by_kind, container_env, one

CANARY = "hf_canary_value_never_rendered"

# --set values -> a fragment of helm's error.
REFUSED: list[tuple[dict[str, str], str]] = [
    ({"device": "gpu"}, "at '/device': value must be one of 'cpu', 'hpu'"),
    ({"vllm.replicas": "0"}, "at '/vllm/replicas': minimum: got 0, want 1"),
    ({"vllm.port": "70000"}, "at '/vllm/port': maximum"),
    ({"model": ""}, "at '/model': minLength"),
    ({"microservice.connector": "litellm"}, "at '/microservice/connector'"),
    ({"vllm.env.vllm_dtype": "bf16"}, "'vllm_dtype' does not match pattern"),
    ({"vllm.resources.limits.memory": "lots"}, "at '/vllm/resources/limits/memory'"),
    ({"vllm.replica": "2"}, "additional properties 'replica' not allowed"),
    ({"hfToken.value": CANARY}, "additional properties 'value' not allowed"),
    (
        {"fp8.enabled": "true", "fp8.datasetPath": "/data/p.pkl"},
        "fp8.enabled=true needs device=hpu",
    ),
    (
        {"microservice.autoscaling.minReplicas": "5", "microservice.autoscaling.maxReplicas": "2"},
        "minReplicas (5) is above maxReplicas (2)",
    ),
    ({"ingress.enabled": "true"}, "ingress.enabled=true needs ingress.host"),
]


@pytest.mark.parametrize(("sets", "message"), REFUSED, ids=[str(s) for s, _ in REFUSED])
def test_wrong_values_are_refused_with_the_rule(
    helm: Helm, sets: dict[str, str], message: str
) -> None:
    error = helm.refusal(sets)
    assert message in error
    assert CANARY not in error


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"fp8.enabled": "true"}, "fp8.enabled=true needs fp8.datasetPath"),
        (
            {"fp8.enabled": "true", "fp8.datasetPath": "/data/p.pkl"},
            "fp8.enabled=true needs a shared model cache",
        ),
    ],
)
def test_fp8_needs_its_inputs(helm: Helm, sets: dict[str, str], message: str) -> None:
    assert message in helm.refusal(sets, values=(GAUDI_VALUES,))


def test_vllm_waits_for_the_manifest_the_fp8_job_publishes(
    helm: Helm, clean_env: pytest.MonkeyPatch
) -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"
    objects = helm.render((GAUDI_VALUES,), {**FP8_SETS, "model": model})
    job = by_kind(objects, "Job")[0]["spec"]["template"]["spec"]
    vllm = one(objects, "Deployment", "vllm")["spec"]["template"]["spec"]

    job_env = container_env(job["containers"][0], objects)
    for name, value in job_env.items():
        clean_env.setenv(name, value)
    published = load(Fp8Settings).result_dir / MANIFEST_FILE
    for name in job_env:
        clean_env.delenv(name)
    for name, value in container_env(vllm["containers"][0], objects).items():
        clean_env.setenv(name, value)
    served = load(ModelServerSettings)

    wait = vllm["initContainers"][0]
    assert {e["name"]: e["value"] for e in wait["env"]}["FP8_MANIFEST"] == str(published)
    assert served.if_fp8_quantization and served.llm_device == "hpu"
    assert served.resolved_quant_config.parent == published.parent
    # The job writes where the pods read: the same claim, mounted at HF_HOME.
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for spec in (job, vllm)
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert len(claims) == 1
    assert by_kind(objects, "PersistentVolumeClaim")[0]["metadata"]["name"] in claims
    assert Path(published).is_relative_to("/data")
    assert job_env["VLLM_TP_SIZE"] == "2"


def test_a_changed_calibration_input_names_a_new_job(helm: Helm) -> None:
    """A Job's pod template is immutable: new inputs must not become a failed upgrade."""
    first = by_kind(helm.render((GAUDI_VALUES,), FP8_SETS), "Job")[0]["metadata"]["name"]
    again = by_kind(helm.render((GAUDI_VALUES,), FP8_SETS), "Job")[0]["metadata"]["name"]
    other = {**FP8_SETS, "fp8.deviceForScales": "GAUDI3"}
    changed = by_kind(helm.render((GAUDI_VALUES,), other), "Job")[0]["metadata"]["name"]
    assert first == again != changed


def test_drain_budget_covers_pre_stop_and_streams(helm: Helm) -> None:
    objects = helm.render((), {"microservice.drainSeconds": "600"})
    usvc = one(objects, "Deployment", "microservice")["spec"]["template"]["spec"]
    container = usvc["containers"][0]
    assert container_env(container, objects)["LLM_DRAIN_TIMEOUT_S"] == "600"
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert usvc["terminationGracePeriodSeconds"] > pre_stop + 600


def test_api_keys_secret_is_mounted_as_a_folder(helm: Helm) -> None:
    """A folder mount (no subPath), so the Secret's ..data swap reaches the reloading store."""
    objects = helm.render((), {"microservice.apiKeys.existingSecret": "llm-keys"})
    usvc = one(objects, "Deployment", "microservice")["spec"]["template"]["spec"]
    mount = next(m for m in usvc["containers"][0]["volumeMounts"] if m["name"] == "api-keys")
    assert "subPath" not in mount
    keys_file = container_env(usvc["containers"][0], objects)["LLM_API_KEYS_FILE"]
    assert Path(keys_file).parent == Path(mount["mountPath"])
