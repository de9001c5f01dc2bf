"""Before vLLM starts: is the model on disk, or can it be downloaded? Are the LoRA adapters
listed at start in their folders?

Without this, a model that is neither (a typo, a host without model-hub access) ends in a
30-line transformers traceback minutes into start-up. Here it is one line naming the model,
where it was looked for, why it cannot be downloaded, and the command that works offline.

The answer costs nothing when the model is on disk: a local folder or a Hugging Face cache
entry is found without any network call. Only a hub id missing from the cache is checked
against the hub, once, with a short timeout. The Hugging Face variables read here
(``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_HUB_CACHE``) come from the environment vLLM
inherits, so the check sees what vLLM's own download would see.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

DEMO_COMMAND = "./run_vllm.sh --native --demo"
DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_TIMEOUT_S = 5.0
# huggingface_hub's own spelling of a true environment value.
_TRUE = frozenset({"1", "ON", "YES", "TRUE"})


class ModelUnavailable(Exception):
    """The model is not on disk and cannot be downloaded; the message is one line."""


def is_local_path(name: str) -> bool:
    """A folder (absolute, ./, ../, ~/, or one that exists), as opposed to a hub id."""
    return name.startswith(("/", "./", "../", "~")) or name in (".", "..") or Path(name).exists()


def hub_cache(hf_home: Path, environ: Mapping[str, str]) -> Path:
    """Where huggingface_hub keeps downloaded models: HF_HUB_CACHE, else <HF_HOME>/hub."""
    return Path(environ.get("HF_HUB_CACHE") or hf_home / "hub")


def is_cached(repo_id: str, cache_dir: Path) -> bool:
    """Whether the cache holds the model's config.json (its default revision); no network."""
    from huggingface_hub import try_to_load_from_cache  # ships with vLLM; only needed here

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    except Exception:  # an id huggingface_hub refuses (HFValidationError) is not cached
        return False
    return isinstance(found, str)


def _no_redirects() -> urllib.request.OpenerDirector:
    class Keep3xx(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None  # a redirect (to a CDN, or a renamed repo) already says "it is there"

    return urllib.request.build_opener(Keep3xx)


def hub_problem(
    repo_id: str, endpoint: str, token: str | None, timeout_s: float = HUB_TIMEOUT_S
) -> str | None:
    """Why the hub cannot serve ``repo_id``'s config.json, or None when it can (or might).

    One HEAD request; the token goes in the Authorization header and never into a message.
    """
    url = f"{endpoint.rstrip('/')}/{repo_id}/resolve/main/config.json"
    request = urllib.request.Request(url, method="HEAD")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _no_redirects().open(request, timeout=timeout_s):
            return None
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as error:  # refused, DNS, TLS, timeout, malformed endpoint
        reason = getattr(error, "reason", None) or error
        return f"cannot reach {endpoint}: {reason}"
    if status in (401, 403):
        return (
            f"{endpoint} answered {status}: the model is private, gated, or does not exist, "
            "and HF_TOKEN does not grant access"
        )
    if status == 404:
        return f"{endpoint} answered 404: no such model"
    return None  # a redirect, or a hub error that a download may well get past


def _one_line(name: str, looked_in: str, reason: str) -> str:
    return (
        f"model {name!r} is not on disk (looked in {looked_in}) and cannot be downloaded "
        f"({reason}); try the built-in tiny model: {DEMO_COMMAND}"
    )


def check(
    name: str,
    hf_home: Path,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    timeout_s: float = HUB_TIMEOUT_S,
) -> None:
    """Return if vLLM can load ``name``; else raise ModelUnavailable with one line."""
    env = os.environ if environ is None else environ
    if is_local_path(name):
        folder = Path(name).expanduser().absolute()
        if folder.is_file() and folder.suffix == ".gguf":
            return  # vLLM loads a single GGUF file as it is
        if not folder.is_dir():
            raise ModelUnavailable(_one_line(name, str(folder), "it is a local path"))
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(
                _one_line(name, f"{folder}, which has no config.json", "it is a local path")
            )
        return
    if env.get("VLLM_USE_MODELSCOPE", "").upper() in _TRUE:
        return  # vLLM downloads from ModelScope, not from the Hugging Face hub
    cache = hub_cache(hf_home, env)
    if is_cached(name, cache):
        return
    if env.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
        raise ModelUnavailable(_one_line(name, str(cache), "HF_HUB_OFFLINE is set"))
    problem = hub_problem(name, env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT, token, timeout_s)
    if problem is not None:
        raise ModelUnavailable(_one_line(name, str(cache), problem))


ADAPTER_CONFIG = "adapter_config.json"  # every peft adapter folder has one


def check_adapter(name: str, path: str) -> None:
    """Return if a LoRA adapter listed at start can be loaded from ``path``; else raise
    ModelUnavailable with one line. A local folder must hold peft's adapter_config.json (vLLM
    would fail only after loading the model, with the path redacted); a hub id is left to vLLM."""
    if not is_local_path(path):
        return
    folder = Path(path).expanduser().absolute()
    if not (folder / ADAPTER_CONFIG).is_file():
        where = "does not exist" if not folder.exists() else f"has no {ADAPTER_CONFIG}"
        raise ModelUnavailable(
            f"VLLM_LORA_MODULES: the adapter {name!r} cannot be loaded: {folder} {where} "
            "(a peft adapter folder, as vLLM sees it)"
        )
