"""Everything the launcher validates before it starts anything: both services' settings and its
own, read once from the environment it was given and ``docker/<device>/.env``, the replica
plan, and the environment every process it starts gets.

The services' settings are the one implementation of their rules: the launcher loads them
directly (with the variables it derives, such as the replicas' endpoints, laid over the
environment) and refuses what they refuse, with their own one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.config_errors import ConfigError
from common.config_loading import load_from
from launcher import demo, rules
from launcher.cli import Options
from launcher.device import detect_device
from launcher.errors import PROG, invalid, refuse
from launcher.host_layout import ReplicaPlanError
from launcher.replica_plan import Plan
from launcher.replicas import plan_for
from launcher.settings import LauncherSettings
from microservice.settings import MicroserviceSettings
from model_server.settings import ModelServerSettings


@dataclass(frozen=True)
class Stack:
    """The validated stack: its device and env file, the three settings objects, the replicas
    (one at least), and ``env``, the environment of every process the launcher starts."""

    device: str
    env_file: Path
    env: dict[str, str]
    model_server: ModelServerSettings
    microservice: MicroserviceSettings
    launcher: LauncherSettings
    plan: Plan

    @property
    def embedding_url(self) -> str:
        return rules.embedding_url(self.model_server, self.launcher)


def load_stack(options: Options, environ: Mapping[str, str]) -> Stack:
    """Validate everything for ``options`` and build the processes' environment; a wrong value
    raises a Refusal with the one line of whoever reads it."""
    env = dict(environ)
    if options.demo:
        env["LLM_DEVICE"] = "cpu"
    device = (env.get("LLM_DEVICE") or detect_device(env.get("PATH"))).lower()
    env["LLM_DEVICE"] = device
    env_file = options.root / "docker" / device / ".env"
    if options.demo:
        native_model = str(options.root / demo.DEMO_MODEL_NATIVE)
        env |= demo.demo_env(env, native_model if options.native else demo.DEMO_MODEL_IN_STACK)
    readable = env_file if env_file.is_file() else None

    try:
        model_server = load_from(ModelServerSettings, env, readable)
    except ConfigError as error:
        raise invalid("model_server", str(error)) from None
    try:
        launcher = load_from(LauncherSettings, env, readable)
        plan = plan_for(model_server, replicas=launcher.vllm_replicas, native=options.native)
    except (ConfigError, ReplicaPlanError) as error:
        raise invalid(PROG, str(error)) from None

    # The microservice routes over every replica started here, unless told otherwise; the
    # demo's talks to the model server the demo starts.
    if not env.get("LLM_MODEL_SERVER_ENDPOINT"):
        if launcher.vllm_replicas > 1:
            env["LLM_MODEL_SERVER_ENDPOINT"] = plan.endpoints
        elif options.demo:
            env["LLM_MODEL_SERVER_ENDPOINT"] = f"http://127.0.0.1:{model_server.llm_vllm_port}"
    rules.check_embedding_port(model_server, launcher)
    if options.native and launcher.llm_embedding_model:
        url = rules.embedding_url(model_server, launcher)
        env |= rules.embedding_defaults(env, launcher.llm_embedding_model, url)

    checked = env
    if not options.native:
        stack_dir = options.root / "docker" / device
        checked = env | rules.mounted_files(env, readable, launcher, stack_dir) | rules.IN_CONTAINER
    try:
        microservice = load_from(MicroserviceSettings, checked, readable)
    except ConfigError as error:
        raise invalid("microservice", str(error)) from None
    rules.check_usvc_port(model_server, launcher, microservice)
    rules.check_kv_events_ports(model_server, launcher, microservice)
    if readable is None:
        raise refuse(f"missing configuration file {env_file}")
    return Stack(device, env_file, env, model_server, microservice, launcher, plan)
