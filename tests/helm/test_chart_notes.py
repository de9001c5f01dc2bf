"""The chart's NOTES.txt, the text `helm install` prints: the commands in it name the Service,
port, namespace and model the chart really renders, and its optional lines follow the values.

`helm template` leaves NOTES.txt out and `helm install --dry-run` needs a cluster, so a copy of
the chart renders the same text as a named template into a ConfigMap, beside the objects.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.helm.chart import CHART, GAUDI_VALUES, NAMESPACE, RELEASE, Helm, one

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def notes_and_objects(
    helm: Helm, tmp_path: Path, sets: dict[str, str], values: tuple[Path, ...] = ()
) -> tuple[str, list[dict[str, Any]]]:
    chart = Path(shutil.copytree(CHART, tmp_path / CHART.name))  # links copied as their files
    templates = chart / "templates"
    text = (templates / "NOTES.txt").read_text()
    (templates / "NOTES.txt").unlink()
    (templates / "_rendered_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + text + "{{- end -}}\n"
    )
    (templates / "rendered-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rendered-notes\n"
        'data:\n  notes: {{ include "test.notes" . | quote }}\n'
    )
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    for path in values:
        args += ["-f", str(path)]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    result = helm.run(*args)
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    notes = next(o for o in objects if o["metadata"]["name"] == "rendered-notes")
    return str(notes["data"]["notes"]), [o for o in objects if o is not notes]


def test_notes_name_what_the_chart_renders(helm: Helm, tmp_path: Path) -> None:
    notes, objects = notes_and_objects(helm, tmp_path, {"model": MODEL})
    service = one(objects, "Service", "microservice")
    port = service["spec"]["ports"][0]["port"]
    name = service["metadata"]["name"]
    assert f"kubectl -n {NAMESPACE} port-forward svc/{name} 9000:{port} &" in notes
    assert f"-l app.kubernetes.io/instance={RELEASE} -w" in notes
    assert f'"model": "{MODEL}"' in notes
    replicas = one(objects, "Deployment", "vllm")["spec"]["replicas"]
    first = f"The stack is starting: {replicas} vLLM pod(s) on cpu serving {MODEL},"
    assert notes.startswith(first)
    assert "FP8" not in notes and "Authorization" not in notes


def test_notes_say_when_api_keys_are_on(helm: Helm, tmp_path: Path) -> None:
    sets = {"model": MODEL, "microservice.apiKeys.existingSecret": "llm-keys"}
    notes, _ = notes_and_objects(helm, tmp_path, sets)
    assert '(add -H "Authorization: Bearer <your key>": API keys are on)' in notes


def test_notes_on_gaudi_with_fp8_name_the_calibration_the_pods_wait_for(
    helm: Helm, tmp_path: Path
) -> None:
    sets = {
        "fp8.enabled": "true",
        "fp8.datasetPath": "/data/calibration/prompts.pkl",
        "vllm.cache.persistence": "true",
        "vllm.cache.accessModes[0]": "ReadWriteMany",
    }
    notes, objects = notes_and_objects(helm, tmp_path, sets, (GAUDI_VALUES,))
    line = next(line for line in notes.splitlines() if line.startswith("FP8: "))
    published = line.split("published ", 1)[1].removesuffix(".")
    assert published.endswith("/calibration.json")
    vllm = one(objects, "Deployment", "vllm")
    assert published in yaml.safe_dump(vllm["spec"]["template"]["spec"]["initContainers"])
    assert " on hpu serving " in notes.splitlines()[0]
