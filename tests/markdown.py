"""Reading the project's Markdown in tests: one parser for every test that holds docs to code."""

from __future__ import annotations

import re
from pathlib import Path

from harness.processes import REPO_ROOT


def section(path: Path, heading: str) -> str:
    """The text under ``heading``, up to the next heading of the same or a higher level."""
    text = path.read_text()
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    assert match, f"{path.name} has no heading {heading!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def code_blocks(text: str, lang: str) -> list[str]:
    """The bodies of the fenced ```lang blocks in ``text``, in order."""
    return re.findall(rf"^```{re.escape(lang)}\n(.*?)^```", text, re.M | re.S)


def shell_commands(block: str) -> list[str]:
    """Commands of a bash block: separated by blank lines, continuation lines joined."""
    return [c.replace("\\\n", " ").strip() for c in re.split(r"\n\s*\n", block.strip())]


def readme_curls() -> list[str]:
    """The README's requests to try: health check, then chat non-streaming, then streaming."""
    block = code_blocks(section(REPO_ROOT / "README.md", "Requests to try"), "bash")[0]
    commands = shell_commands(block)
    assert len(commands) == 3, commands
    assert all(c.startswith("curl http://localhost:9000") for c in commands), commands
    return commands


# run_vllm.sh prints this line, then the README's requests with its own port, once it is ready.
READY_LINE = "The stack is ready. Requests to try:"


def printed_requests(output: str) -> list[str]:
    """The curl commands run_vllm.sh prints once the stack answers, as the README lists them."""
    assert READY_LINE in output, output
    block = output.split(READY_LINE, 1)[1].split("\nOpenAI SDK", 1)[0]
    return shell_commands(block)


def readme_curls_on(port: int | str) -> list[str]:
    return [c.replace("localhost:9000", f"localhost:{port}") for c in readme_curls()]
