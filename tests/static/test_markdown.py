"""The project's Markdown stays true and self-contained: every link resolves to a file in this
repository, the README stays short and starts with the one run command, and no page refers to
internal work items a reader cannot see. Each check is a function of a path or a text, and is
also shown failing on a broken sample, so that a check that can never fail does not pass
unnoticed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from harness.processes import REPO_ROOT
from tests.markdown import code_blocks, readme_curls

README = REPO_ROOT / "README.md"
README_LIMIT_BYTES = 6_000
RUN_COMMAND = "./run_vllm.sh --native --demo"
DOCS_PAGES = ("operating", "configuration", "compatibility", "benchmarks", "development")

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets (badges).
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
_HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
_HTML_TAG_WITH_LINK = re.compile(r"<[^>]*\b(?:href|src)\s*=[^>]*>", re.I)
# What GitHub turns into a link by itself: <scheme:...> and bare http(s)/www addresses.
_AUTOLINK = re.compile(r"<((?:https?|mailto|ftp):[^>\s]+)>|\b((?:https?://|www\.)[^\s)>]+)", re.I)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:|^//", re.I)
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
# "issue 6", "Issues #12", "PR 31", "ticket 4", "work item 2", and a bare "#6" that is not part
# of a word, a path, an HTML entity or an anchor such as "#1-intro".
_WORK_ITEM = re.compile(
    r"\b(?:issues?|pull\s+requests?|PRs?|tickets?|work\s+items?)\s+#?\d+\b"
    r"|(?<![\w/&#])#\d{1,5}\b(?![\w-])",
    re.I,
)


def markdown_files() -> list[Path]:
    """Every *.md git tracks or would track (new pages count before they are committed)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(path for name in listed if (path := REPO_ROOT / name).is_file())


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code removed: code is not a link."""
    lines, fence = [], ""
    for line in text.splitlines():
        opening = _FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = ""
            continue
        if opening:
            fence = opening.group(1)
            continue
        lines.append(_INLINE_CODE.sub("", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: rendered text, lower case, no punctuation, '-' for ' '."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_targets(text: str) -> list[str]:
    """Targets of inline links and images, reference definitions, HTML links and autolinks."""
    prose = "\n".join(prose_lines(text))
    targets = [m.group(1).strip("<>") for m in _INLINE_LINK.finditer(prose)]
    targets += [m.group(1).strip("<>") for m in _REFERENCE_DEFINITION.finditer(prose)]
    targets += _HTML_LINK.findall(prose)
    without_links = _HTML_TAG_WITH_LINK.sub(
        "", _INLINE_LINK.sub("", _REFERENCE_DEFINITION.sub("", prose))
    )
    targets += [a or b for a, b in _AUTOLINK.findall(without_links)]
    return targets


def link_problems(path: Path, text: str | None = None, root: Path = REPO_ROOT) -> list[str]:
    """Links of ``path`` (or of ``text`` as if it were at ``path``) that do not resolve to a file
    or folder inside ``root``: missing, escaping the repository, or leaving it (http, mailto)."""
    text = path.read_text() if text is None else text
    root = root.resolve()
    problems = []
    for target in link_targets(text):
        if _SCHEME.match(target) or target.lower().startswith("www."):
            problems.append(f"{target}: leaves the repository")
            continue
        location, _, anchor = target.partition("#")
        location = unquote(location.split("?")[0])
        if not location:
            if slug(unquote(anchor)) not in anchors(text):
                problems.append(f"{target}: no such heading in {path.name}")
            continue
        base = root if location.startswith("/") else path.parent
        resolved = (base / location.lstrip("/")).resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"{target}: escapes the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif (
            anchor
            and resolved.suffix == ".md"
            and unquote(anchor) not in anchors(resolved.read_text())
        ):
            problems.append(f"{target}: no such heading in {resolved.name}")
    return problems


def work_item_references(text: str) -> list[str]:
    """Internal work-item numbers in the prose ("issue 6", "#6"), which readers cannot look up."""
    return [m.group(0) for line in prose_lines(text) for m in _WORK_ITEM.finditer(line)]


def oversize(path: Path, limit: int = README_LIMIT_BYTES) -> str | None:
    size = len(path.read_bytes())
    return f"{path.name} is {size} bytes, over {limit}" if size > limit else None


def run_command_problem(text: str) -> str | None:
    """The first bash block must be the one command a newcomer runs."""
    blocks = code_blocks(text, "bash")
    if not blocks:
        return "no ```bash block"
    if RUN_COMMAND not in (line.strip() for line in blocks[0].splitlines()):
        return f"the first ```bash block does not run {RUN_COMMAND!r}: {blocks[0]!r}"
    return None


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


# --- every link of every page resolves inside the repository ---


@pytest.mark.parametrize("path", markdown_files(), ids=relative)
def test_every_link_resolves_inside_the_repository(path: Path) -> None:
    assert link_problems(path) == []


def test_link_check_fails_on_broken_samples(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# Here it is\n")
    page = tmp_path / "docs" / "page.md"
    sample = "\n".join(
        [
            "# Top",
            "[ok](there.md) [ok](there.md#here-it-is) [ok](#top) [ok](../docs)",
            "![ok](/docs/there.md)",
            "[gone](missing.md) ![gone](img/chart.png) [out](../../outside.md)",
            "[web](https://example.com/x) [mail](mailto:a@b.c)",
            "<https://example.com> www.example.com",
            "[anchor](#nowhere) [anchor](there.md#nowhere)",
            "[ref]: elsewhere.md",
            '<a href="http://example.com">x</a>',
            "```",
            "[in code](not-checked.md) https://not-checked.example",
            "```",
            "`[inline](not-checked.md)`",
        ]
    )
    problems = link_problems(page, sample, root=tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        "missing.md",
        "img/chart.png",
        "../../outside.md",
        "https",
        "mailto",
        "#nowhere",
        "there.md#nowhere",
        "elsewhere.md",
        "http",
        "https",
        "www.example.com",
    ], problems
    assert "escapes the repository" in problems[2]


def test_slugs_follow_github() -> None:
    assert slug("run_vllm.sh") == "run_vllmsh"
    assert slug("FP8 calibration (Gaudi)") == "fp8-calibration-gaudi"
    assert (
        slug("The model server (`python -m model_server`)")
        == "the-model-server-python--m-model_server"
    )
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


# --- the README: short, the run command first, the requests to try, links to every page ---


def test_readme_is_at_most_6000_bytes() -> None:
    assert oversize(README) is None


def test_size_check_fails_on_a_long_page(tmp_path: Path) -> None:
    long_page = tmp_path / "README.md"
    long_page.write_text("x" * (README_LIMIT_BYTES + 1))
    assert oversize(long_page) is not None


def test_readme_runs_the_demo_command_first() -> None:
    assert run_command_problem(README.read_text()) is None


def test_run_command_check_fails_when_another_command_comes_first() -> None:
    assert run_command_problem("```bash\n./run_vllm.sh --native\n```\n") is not None
    assert run_command_problem("```bash\nmake test\n```\n```bash\n" + RUN_COMMAND + "\n```\n")
    assert run_command_problem("no code at all") is not None


def test_readme_has_the_three_requests_to_try() -> None:
    health, blocking, streaming = readme_curls()
    assert "/v1/health_check" in health
    assert '"streaming": false' in blocking and '"max_new_tokens": 32' in blocking
    assert '"streaming": true' in streaming and '"max_new_tokens": 32' in streaming


def test_readme_links_every_docs_page() -> None:
    targets = set(link_targets(README.read_text()))
    assert {f"docs/{page}.md" for page in DOCS_PAGES} <= targets


# --- no internal work-item numbers ---


@pytest.mark.parametrize("path", markdown_files(), ids=relative)
def test_no_internal_work_item_references(path: Path) -> None:
    assert work_item_references(path.read_text()) == []


def test_work_item_check_fails_on_references() -> None:
    sample = "Fixed in issue 6. See Issues #12, as in #7, PR 31 and work item 2."
    assert work_item_references(sample) == ["issue 6", "Issues #12", "#7", "PR 31", "work item 2"]


def test_work_item_check_passes_normal_text() -> None:
    sample = "\n".join(
        [
            "The issue is HTTP 404 after step 1 of 3; tissue 42; C# 10; &#123; #ffffff #000000.",
            "An anchor: [intro](#1-intro), a path: docs/page.md#2, `issue 6` in code.",
            "```",
            "#include <stdio.h>  # issue 6",
            "```",
        ]
    )
    assert work_item_references(sample) == []
