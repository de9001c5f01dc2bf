"""vllm.lora: LoRA adapters served from a claim mounted read-only at /adapters in every vLLM
pod, listed to vLLM as name=/adapters/folder (VLLM_LORA_MODULES), with their limits; off by
default; adapters without a claim, or a rank vLLM does not take, are refused."""

from __future__ import annotations

import pytest

from tests.helm.chart import Helm, container_env, one

ON = {
    "vllm.lora.adapters.sql-team": "sql/v3",
    "vllm.lora.adapters.hr": "/hr",
    "vllm.lora.existingClaim": "team-adapters",
    "vllm.lora.maxLoras": "4",
    "vllm.lora.maxRank": "32",
    "vllm.lora.runtimeLoading": "true",
}
LORA = ("VLLM_LORA_MODULES", "VLLM_MAX_LORAS", "VLLM_MAX_LORA_RANK", "VLLM_ALLOW_RUNTIME_LORA")


def test_off_by_default(helm: Helm) -> None:
    objects = helm.render()
    pod = one(objects, "Deployment", "vllm")["spec"]["template"]["spec"]
    env = container_env(pod["containers"][0], objects)
    assert not set(LORA) & set(env)
    assert "adapters" not in {v["name"] for v in pod["volumes"]}


def test_adapters_come_from_the_claim_read_only(helm: Helm) -> None:
    objects = helm.render(sets=ON)
    pod = one(objects, "Deployment", "vllm")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    env = container_env(server, objects)
    assert env["VLLM_LORA_MODULES"] == "hr=/adapters/hr,sql-team=/adapters/sql/v3"
    assert (env["VLLM_MAX_LORAS"], env["VLLM_MAX_LORA_RANK"]) == ("4", "32")
    assert env["VLLM_ALLOW_RUNTIME_LORA"] == "true"
    volume = next(v for v in pod["volumes"] if v["name"] == "adapters")
    assert volume["persistentVolumeClaim"] == {"claimName": "team-adapters", "readOnly": True}
    mount = next(m for m in server["volumeMounts"] if m["name"] == "adapters")
    assert mount == {"name": "adapters", "mountPath": "/adapters", "readOnly": True}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"vllm.lora.adapters.sql": "sql"}, "vllm.lora.adapters needs vllm.lora.existingClaim"),
        ({"vllm.lora.maxRank": "12"}, "maxRank"),
        ({"vllm.lora.adapters.a\\=b": "x", "vllm.lora.existingClaim": "c"}, "'a=b' does not match"),
    ],
)
def test_wrong_values_are_refused(helm: Helm, sets: dict[str, str], message: str) -> None:
    assert message in helm.refusal(sets)
