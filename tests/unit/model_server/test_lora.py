"""LoRA settings: the adapter list's form, the limits, and what each renders for vLLM."""

from __future__ import annotations

import pytest

from common.config_errors import ConfigError
from model_server.__main__ import load_settings
from model_server.lora import LoraModule, parse_modules
from model_server.render import merged_env, render
from model_server.settings import ModelServerSettings


def settings(**values: object) -> ModelServerSettings:
    return ModelServerSettings.model_validate(values)


def lora_part(args: list[str]) -> list[str]:
    return args[args.index("--enable-lora") :] if "--enable-lora" in args else []


def test_modules_are_parsed_in_order_with_blanks_dropped() -> None:
    assert parse_modules(" sql = /data/lora/sql ,chat=org/chat-adapter,x=/a=b") == [
        LoraModule("sql", "/data/lora/sql"),
        LoraModule("chat", "org/chat-adapter"),  # a Hugging Face repo id: vLLM downloads it
        LoraModule("x", "/a=b"),  # split at the first `=`, as vLLM does
    ]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("sql", "'sql' is not name=path"),
        ("sql=", "'sql=' is not name=path"),
        ("=/p", "'=/p' is not name=path"),
        ("my sql=/p", "'my sql=/p' is not name=path"),
        ("a=/p,,b=/q", "'' is not name=path"),
        ("a=/p,", "'' is not name=path"),
        ("a=/p,a=/q", "'a' is listed twice"),
    ],
)
def test_wrong_module_lists_stop_the_start_with_one_line(
    clean_env: pytest.MonkeyPatch, value: str, fragment: str
) -> None:
    clean_env.setenv("VLLM_LORA_MODULES", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    message = str(caught.value)
    assert message.startswith(f"invalid configuration: VLLM_LORA_MODULES={value!r}: ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("VLLM_MAX_LORAS", "0", "VLLM_MAX_LORAS='0'"),
        ("VLLM_MAX_LORA_RANK", "12", "VLLM_MAX_LORA_RANK='12': vLLM takes one of 1, 8, 16"),
        ("VLLM_MAX_LORA_RANK", "eight", "VLLM_MAX_LORA_RANK='eight'"),
        ("VLLM_ALLOW_RUNTIME_LORA", "sure", "VLLM_ALLOW_RUNTIME_LORA='sure'"),
    ],
)
def test_wrong_limits_name_variable_and_value(
    clean_env: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(None)


def test_an_adapter_named_as_the_model_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    """vLLM would refuse it only after loading the model."""
    clean_env.setenv("LLM_VLLM_MODEL_NAME", "/models/tiny")
    clean_env.setenv("VLLM_LORA_MODULES", "ok=/a,/models/tiny=/b")
    with pytest.raises(ConfigError, match="the adapter '/models/tiny' has the served model's"):
        load_settings(None)


def test_check_shows_the_list_as_vllm_gets_it(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("VLLM_LORA_MODULES", " a = /x , b=/y ")
    assert load_settings(None).vllm_lora_modules == "a=/x,b=/y"


@pytest.mark.usefixtures("clean_env")
class TestRender:
    def test_off_by_default(self) -> None:
        plan = render(settings())
        assert lora_part(plan.vllm_args) == []
        assert not any("lora" in arg for arg in plan.vllm_args)
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in plan.env

    def test_modules_and_limits(self) -> None:
        plan = render(
            settings(
                vllm_lora_modules="sql=/data/sql,chat=/data/chat",
                vllm_max_loras=2,
                vllm_max_lora_rank=16,
            )
        )
        assert lora_part(plan.vllm_args) == [
            "--enable-lora",
            "--lora-modules", "sql=/data/sql", "chat=/data/chat",
            "--max-loras", "2",
            "--max-lora-rank", "16",
        ]  # fmt: skip
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in plan.env

    @pytest.mark.parametrize(
        "values", [{"vllm_max_loras": 3}, {"vllm_max_lora_rank": 8}, {"vllm_lora_modules": "a=/a"}]
    )
    def test_any_lora_setting_turns_lora_on(self, values: dict[str, object]) -> None:
        assert "--enable-lora" in render(settings(**values)).vllm_args

    def test_runtime_loading_alone_turns_lora_on(self) -> None:
        plan = render(settings(vllm_allow_runtime_lora=True))
        assert lora_part(plan.vllm_args) == ["--enable-lora"]
        assert plan.env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in plan.describe("python")

    def test_rendered_for_hpu_too(self) -> None:
        plan = render(settings(llm_device="hpu", vllm_lora_modules="a=/a"))
        assert lora_part(plan.vllm_args) == ["--enable-lora", "--lora-modules", "a=/a"]

    def test_an_inherited_runtime_switch_never_reaches_vllm(self) -> None:
        inherited = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "PATH": "/bin"}
        off = merged_env(inherited, render(settings()))
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in off
        assert off["PATH"] == "/bin"
        on = merged_env({}, render(settings(vllm_allow_runtime_lora=True)))
        assert on["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
