"""Every setting of every service reaches its container from docker/<device>/.env.

Each stack is rendered offline (`docker-compose config`) with an env file that gives every
setting of its services a distinctive valid value; each value must arrive unchanged in the right
service's environment. The list of settings is the settings classes' fields, so a new setting the
compose file does not pass fails here. The few settings a compose file fixes or leaves out on
purpose are listed below, each with its reason; the check is also shown failing on broken copies.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
import pytest
from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from common.config_loading import load
from fp8_quant.settings import Fp8Settings
from harness.processes import REPO_ROOT
from launcher.settings import LauncherSettings
from microservice.settings import MicroserviceSettings
from model_server.settings import ModelServerSettings
from tests.static import checks

Services = Mapping[str, type[BaseSettings]]

# Per stack: the compose profiles that start every service, and which settings each service reads.
STACK_SERVICES: dict[str, tuple[tuple[str, ...], Services]] = {
    "cpu": (
        ("embedding",),
        {
            "llm-vllm-model-server": ModelServerSettings,
            "llm-usvc": MicroserviceSettings,
            "vllm-embedding": ModelServerSettings,
        },
    ),
    "hpu": (
        ("fp8", "embedding"),
        {
            "llm-vllm-model-server": ModelServerSettings,
            "llm-usvc": MicroserviceSettings,
            "fp8-quant": Fp8Settings,
            "vllm-embedding": ModelServerSettings,
        },
    ),
}

HF_HOME_REASON = "the Hugging Face cache is the mounted data/ folder, /data in the container"

# Settings the compose file sets itself, on purpose: (stack, service) -> {NAME: (value, reason)}.
FIXED: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    ("cpu", "llm-vllm-model-server"): {
        "LLM_DEVICE": ("cpu", "the CPU stack runs vLLM on Xeon: the device is the stack"),
        "HF_HOME": ("/data", HF_HOME_REASON),
    },
    ("hpu", "llm-vllm-model-server"): {
        "LLM_DEVICE": ("hpu", "the Gaudi stack runs vLLM on Gaudi: the device is the stack"),
        "HF_HOME": ("/data", HF_HOME_REASON),
    },
    ("hpu", "fp8-quant"): {
        "LLM_DEVICE": ("hpu", "the job measures on Gaudi; cpu is for tests outside Compose"),
        "HF_HOME": ("/data", HF_HOME_REASON + "; the model server reads the result there"),
    },
}

# The embedding profile's model server: the chat one (Compose `extends`), but for these.
EMBEDDING_FIXED = {
    "VLLM_RUNNER": ("pooling", "the embedding server runs its model for pooling"),
    "VLLM_CONVERT": ("embed", "an embedding model, or a chat model adapted into one"),
    **{
        name: ("", "the chat model's sizing is not the embedding model's: vLLM's default")
        for name in ("VLLM_MAX_NUM_SEQS", "VLLM_TP_SIZE", "VLLM_PP_SIZE", "VLLM_MAX_MODEL_LEN")
    },
    "VLLM_JSON_COMPACT": ("", "structured outputs are the chat model's"),
    "VLLM_KV_EVENTS_PORT": ("", "the chat model server's events port, which it would bind too"),
    **{
        name: ("", "LoRA adapters are the chat model's")
        for name in ("VLLM_LORA_MODULES", "VLLM_MAX_LORAS", "VLLM_MAX_LORA_RANK")
    },
    "VLLM_ALLOW_RUNTIME_LORA": ("false", "LoRA adapters are the chat model's"),
}
HPU_SIZING = (
    "VLLM_PROMPT_BS_BUCKET_MAX",
    "VLLM_PROMPT_QUERY_BUCKET_MAX",
    "VLLM_DECODE_BS_BUCKET_MAX",
    "VLLM_DECODE_BLOCK_BUCKET_MAX",
)
for _stack in ("cpu", "hpu"):
    FIXED[(_stack, "vllm-embedding")] = {
        **FIXED[(_stack, "llm-vllm-model-server")],
        **EMBEDDING_FIXED,
    }
FIXED[("hpu", "vllm-embedding")] |= {
    "IF_FP8_QUANTIZATION": ("false", "the FP8 measurements are the chat model's"),
    "QUANT_CONFIG": ("", "the FP8 measurements are the chat model's"),
    "VLLM_KV_CACHE_DTYPE": ("", "an FP8 KV cache goes with the chat model's FP8 measurements"),
    **{
        name: ("", "the chat model's warm-up sizes are not the embedding model's")
        for name in HPU_SIZING
    },
}

# Settings a compose file passes from another variable: (stack, service) -> {NAME: (SOURCE,
# reason)}; NAME must arrive with the value given to SOURCE.
FROM_VARIABLE: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    (stack, "vllm-embedding"): {
        "LLM_VLLM_MODEL_NAME": ("LLM_EMBEDDING_MODEL", "the embedding server's model"),
        "LLM_VLLM_PORT": ("LLM_EMBEDDING_PORT", "the embedding server's port"),
    }
    for stack in ("cpu", "hpu")
}
FROM_VARIABLE[("hpu", "vllm-embedding")]["HABANA_VISIBLE_DEVICES"] = (
    "LLM_EMBEDDING_HABANA_VISIBLE_DEVICES",
    "the embedding server's own cards",
)

HPU_ONLY = "HPU only: a Gaudi runtime setting that the CPU render ignores"
CPU_ONLY = "CPU only: a vLLM CPU setting that the HPU render ignores"
# Read by the launcher (run_vllm.sh), not by a container: listed in .env.
FOR_RUN_VLLM = {
    "VLLM_REPLICAS": "run_vllm.sh starts one model-server service per replica (the generated "
    "replicas.override.yaml); one container is one replica",
    "LLM_EMBEDDING_MODEL": "run_vllm.sh enables the embedding profile with it; the "
    "vllm-embedding service gets it as its LLM_VLLM_MODEL_NAME",
    "LLM_EMBEDDING_PORT": "the vllm-embedding service gets it as its LLM_VLLM_PORT",
}

# Settings the compose file does not pass, on purpose: (stack, service) -> {NAME: reason}.
NOT_PASSED: dict[tuple[str, str], dict[str, str]] = {
    ("cpu", "llm-vllm-model-server"): {
        "VLLM_SKIP_WARMUP": HPU_ONLY,
        "VLLM_BUCKETING_STRATEGY": HPU_ONLY,
        **{name: HPU_ONLY for name in HPU_SIZING},
        "VLLM_KV_CACHE_DTYPE": "fp8_inc is a Gaudi dtype: the settings refuse it with "
        "LLM_DEVICE=cpu",
        "HABANA_VISIBLE_DEVICES": HPU_ONLY,
        "PT_HPU_ENABLE_LAZY_COLLECTIVES": HPU_ONLY,
        "PT_HPU_LAZY_ACC_PAR_MODE": HPU_ONLY,
        "OMPI_MCA_btl_vader_single_copy_mechanism": HPU_ONLY,
        "IF_FP8_QUANTIZATION": "FP8 serving needs Gaudi: the settings refuse true with "
        "LLM_DEVICE=cpu",
        "QUANT_CONFIG": "read only for FP8 serving, which is HPU only",
    },
    ("hpu", "llm-vllm-model-server"): {
        "VLLM_CPU_KVCACHE_SPACE": CPU_ONLY,
        "VLLM_CPU_OMP_THREADS_BIND": CPU_ONLY,
        "VLLM_CPU_PRELOAD": CPU_ONLY,
    },
}
for _stack in ("cpu", "hpu"):
    NOT_PASSED[(_stack, "vllm-embedding")] = {
        name: reason
        for name, reason in NOT_PASSED[(_stack, "llm-vllm-model-server")].items()
        if name not in FIXED[(_stack, "vllm-embedding")]
    }

# Compose interpolation is case-sensitive: these variables keep their own spelling (Open MPI's,
# kept from upstream) in .env and compose; the settings read any case.
SPELLING = {
    "ompi_mca_btl_vader_single_copy_mechanism": "OMPI_MCA_btl_vader_single_copy_mechanism",
}

# Values that a generic distinctive value would not satisfy (a pattern, a file that is read at
# start: the examples of docker/usvc-config/, which this also shows valid).
USVC_CONFIG = REPO_ROOT / "docker" / "usvc-config"
SPECIAL_VALUES = {
    "llm_model_server_endpoint": "http://model-server.test:18008/base",
    "llm_embedding_model_server_endpoint": "http://embedding-server.test:18009",
    "llm_rerank_model_server_endpoint": "http://rerank-server.test:18010",
    "otel_exporter_otlp_endpoint": "http://otel-collector.test:14318",
    "llm_models_file": str(USVC_CONFIG / "models.example.yaml"),
    "llm_api_keys_file": str(USVC_CONFIG / "api-keys.example.yaml"),
    "llm_data_dir": "./data-test",  # folders Compose mounts: a path, not a volume's name
    "llm_usvc_config_dir": "../usvc-config-test",
    "vllm_lora_modules": "sql=/data/adapters/sql-test",
    "vllm_max_lora_rank": "16",
}


def env_name(field_name: str) -> str:
    return SPELLING.get(field_name, field_name.upper())


def bounds(field: FieldInfo) -> tuple[float, float | None]:
    """The lowest and highest value the Field constraints allow (1 and none by default)."""
    low: float = 1
    high: float | None = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = float(item.ge)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Gt):
            low = float(item.gt) + 1  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Le):
            high = float(item.le)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Lt):
            high = float(item.lt) - 1  # type: ignore[arg-type]
    return low, high


TRUE_SPELLINGS = ("on", "YES", "1", "True", "ON", "yes")
FALSE_SPELLINGS = ("off", "NO", "0", "False", "OFF", "no")


def distinctive_value(
    name: str, field: FieldInfo, index: int, taken: frozenset[str] = frozenset()
) -> str:
    """A valid value for ``field``, unlike its default, the compose defaults and other fields'."""
    if name in SPECIAL_VALUES:
        return SPECIAL_VALUES[name]
    annotation: Any = field.annotation
    optional = type(None) in get_args(annotation)
    base = next(a for a in get_args(annotation) if a is not type(None)) if optional else annotation
    if get_origin(base) is Literal:
        others = [str(v) for v in get_args(base) if v != field.default]
        return others[-1] if others else str(field.default).swapcase()
    if base is bool:  # the opposite of the default, in a spelling compose does not use
        spellings = FALSE_SPELLINGS if field.default is True else TRUE_SPELLINGS
        return spellings[index % len(spellings)]
    if base in (int, float):
        low, high = bounds(field)
        value = low + 10 + index if base is int else low + 10.25 + index
        while str(int(value) if base is int else value) in taken:
            value += 100
        if high is not None and value > high:  # a narrow range: its highest value not taken
            candidates = [high - step for step in range(int(high - low) + 1)]
            value = next((c for c in candidates if str(int(c)) not in taken), high)
        return str(int(value) if base is int else value)
    if base is Path:
        return f"/test/{name.replace('_', '-')}"
    if base is SecretStr:
        return f"secret-{name.replace('_', '-')}"
    if base is str:
        return f"{name.replace('_', '-')}-value"
    raise AssertionError(f"no distinctive value for {name}: {annotation!r}")


def choice_or_bool(annotation: Any) -> bool:
    args = get_args(annotation) or (annotation,)
    return any(arg is bool or get_origin(arg) is Literal for arg in args)


def stack_values(services: Services) -> dict[str, str]:
    """One value per variable of the stack (a name read by two services gets one value)."""
    values: dict[str, str] = {}
    for settings in services.values():
        for name, field in settings.model_fields.items():
            if env_name(name) not in values:
                taken = frozenset(values.values())
                values[env_name(name)] = distinctive_value(name, field, len(values), taken)
    return values


def stack_problems(
    stack: str, compose: Path, services: Services, tmp_path: Path
) -> list[tuple[str, list[str]]]:
    """Render ``compose`` with every setting given a value; what did not arrive, per service."""
    profiles, _ = STACK_SERVICES[stack]
    values = stack_values({**services, "run_vllm.sh": LauncherSettings})  # it reads .env too
    env_file = checks.write_env_file(tmp_path / f"{stack}-every-setting.env", values)
    config = checks.rendered(compose, env_file, profiles)
    problems = []
    for service, settings in services.items():
        fixed = FIXED.get((stack, service), {})
        left_out = NOT_PASSED.get((stack, service), {})
        renamed = FROM_VARIABLE.get((stack, service), {})
        expected = {env_name(n): values[env_name(n)] for n in settings.model_fields}
        expected = {k: v for k, v in expected.items() if k not in fixed and k not in left_out}
        expected |= {name: value for name, (value, _) in fixed.items()}
        expected |= {name: values[source] for name, (source, _) in renamed.items()}
        found = checks.environment_problems(config, service, expected, left_out)
        problems.append((service, found))
    return problems


def compose_file(stack: str) -> Path:
    return REPO_ROOT / "docker" / stack / "docker-compose.yaml"


@pytest.mark.parametrize("stack", STACK_SERVICES)
def test_every_setting_reaches_its_service(stack: str, tmp_path: Path) -> None:
    _, services = STACK_SERVICES[stack]
    for service, problems in stack_problems(stack, compose_file(stack), services, tmp_path):
        assert problems == [], f"{stack}/{service}: pass each as NAME: ${{NAME:-}} in compose"


@pytest.mark.parametrize("stack", STACK_SERVICES)
def test_the_values_are_valid_and_distinct(
    stack: str, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    _, services = STACK_SERVICES[stack]
    values = stack_values(services)
    env_file = checks.write_env_file(tmp_path / "values.env", values)
    for settings in services.values():
        load(settings, env_file)  # raises ConfigError on a value the service would refuse
    # Two variables swapped in compose show; booleans and choices have too few values for that.
    fields = {env_name(n): f for s in services.values() for n, f in s.model_fields.items()}
    free = [v for k, v in values.items() if not choice_or_bool(fields[k].annotation)]
    assert len(set(free)) == len(free)


@pytest.mark.parametrize("stack", STACK_SERVICES)
def test_the_env_file_lists_every_variable_compose_passes(stack: str) -> None:
    _, services = STACK_SERVICES[stack]
    listed = checks.env_keys(REPO_ROOT / "docker" / stack / ".env")
    for service, settings in services.items():
        fixed = FIXED.get((stack, service), {})
        left_out = NOT_PASSED.get((stack, service), {})
        names = {env_name(name) for name in settings.model_fields}
        assert names - set(fixed) - set(left_out) - listed == set(), f"{service}: add to .env"
        assert listed & (set(left_out) - set(FOR_RUN_VLLM)) == set(), (
            f"{service} does not receive these"
        )
    assert set(FOR_RUN_VLLM) <= listed, "run_vllm.sh reads these from .env"


def test_every_exception_names_a_setting_of_its_service() -> None:
    for exceptions in (FIXED, NOT_PASSED, FROM_VARIABLE):
        for (stack, service), names in exceptions.items():
            settings = STACK_SERVICES[stack][1][service]
            known = {env_name(name) for name in settings.model_fields}
            assert set(names) <= known, f"{stack}/{service}: stale exceptions"
            assert all(names.values()), "each exception says why"


# --- the check fails on broken copies ---


def broken_cpu_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "docker" / "cpu"
    folder.mkdir(parents=True)
    return Path(shutil.copy(compose_file("cpu"), folder / "docker-compose.yaml"))


def test_fails_when_compose_drops_a_variable(tmp_path: Path) -> None:
    compose = broken_cpu_copy(tmp_path)
    text = compose.read_text()
    line = "      LLM_USVC_WORKERS: ${LLM_USVC_WORKERS:-}\n"
    assert line in text
    compose.write_text(text.replace(line, ""))
    problems = dict(stack_problems("cpu", compose, STACK_SERVICES["cpu"][1], tmp_path))
    assert problems == {
        "llm-vllm-model-server": [],
        "llm-usvc": ["llm-usvc: LLM_USVC_WORKERS is not passed"],
        "vllm-embedding": [],
    }


def test_fails_when_compose_passes_the_wrong_variable(tmp_path: Path) -> None:
    compose = broken_cpu_copy(tmp_path)
    text = compose.read_text()
    compose.write_text(
        text.replace("${LLM_REQUEST_TIMEOUT_S:-}", "${LLM_CONNECT_TIMEOUT_S:-}", 1)
        .replace("${VLLM_PP_SIZE:-}", "${VLLM_TP_SIZE:-}", 1)
        .replace("      HF_HOME: /data\n", "      HF_HOME: ${HF_HOME:-/data}\n", 1)
    )
    values = stack_values(STACK_SERVICES["cpu"][1])
    problems = dict(stack_problems("cpu", compose, STACK_SERVICES["cpu"][1], tmp_path))
    assert problems["llm-usvc"] == [
        f"llm-usvc: LLM_REQUEST_TIMEOUT_S={values['LLM_CONNECT_TIMEOUT_S']!r}, "
        f"expected {values['LLM_REQUEST_TIMEOUT_S']!r}"
    ]
    assert problems["llm-vllm-model-server"] == [
        f"llm-vllm-model-server: VLLM_PP_SIZE={values['VLLM_TP_SIZE']!r}, "
        f"expected {values['VLLM_PP_SIZE']!r}",
        f"llm-vllm-model-server: HF_HOME={values['HF_HOME']!r}, expected '/data'",
    ]


def test_fails_for_a_new_setting_compose_does_not_pass(tmp_path: Path) -> None:
    class WithNewSetting(MicroserviceSettings):
        llm_new_knob_s: float = Field(1.0, gt=0, description="A setting added later.")

    services: Services = {
        "llm-vllm-model-server": ModelServerSettings,
        "llm-usvc": WithNewSetting,
    }
    problems = dict(stack_problems("cpu", compose_file("cpu"), services, tmp_path))
    assert problems["llm-usvc"] == ["llm-usvc: LLM_NEW_KNOB_S is not passed"]


def test_fails_when_an_hpu_only_setting_reaches_the_cpu_stack(tmp_path: Path) -> None:
    compose = broken_cpu_copy(tmp_path)
    text = compose.read_text()
    compose.write_text(
        text.replace(
            "      HF_HOME: /data\n",
            "      HF_HOME: /data\n      HABANA_VISIBLE_DEVICES: ${HABANA_VISIBLE_DEVICES:-all}\n",
            1,
        )
    )
    problems = dict(stack_problems("cpu", compose, STACK_SERVICES["cpu"][1], tmp_path))
    assert problems["llm-vllm-model-server"] == [
        "llm-vllm-model-server: HABANA_VISIBLE_DEVICES is passed"
    ]
