"""Validate rendered objects strictly, offline, as an API server's schema check would.

Core kinds go to kubernetes-validate (the Kubernetes OpenAPI schemas of each version, strict:
an unknown field is an error, a kind without a schema is an error, never a skip). Custom
resources go to their CRD's openAPIV3Schema, made strict the same way.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

CRD_DIR = Path(__file__).parent / "crds"


def strict(schema: Any) -> Any:
    """Close every object schema that lists its properties (the API server prunes or rejects
    unknown fields; a typo must fail here rather than vanish in a cluster)."""
    if isinstance(schema, dict):
        closed = {key: strict(value) for key, value in schema.items()}
        open_ended = "additionalProperties" in closed or closed.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        if "properties" in closed and not open_ended:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict schema of every vendored CRD version."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # metadata is the API server's to check; apiVersion/kind were matched above.
                schema["properties"]["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = strict(schema)
    return schemas


def problems(obj: dict[str, Any], version: str, crds: dict[tuple[str, str], Any]) -> list[str]:
    """Every schema problem of one object for one Kubernetes version ([] when valid)."""
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} on {version}"
    crd = crds.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if crd is not None:
        validator = jsonschema.Draft7Validator(crd)
        return [f"{where}: {e.json_path}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{where}: {error.json_path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{where}: no schema: {error.message}"]
    return []
