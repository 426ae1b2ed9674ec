"""The docs stay true: their example config passes the check, their links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", page.read_text(), re.M)}


def test_quickstart_config_passes_check(tmp_path, capsys):
    from offload_spawner.hub.cli import main

    text = (ROOT / "docs" / "quickstart.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(blocks[0])
    assert main(["check", "-f", str(config)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "target leonardo: slurm (node vk-leonardo, offload session)" in out


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_link_checker_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A Title: here\n[ok](#a-title-here) [web](https://x.org/y) [bad](missing.md) [bad anchor](#nope)\n"
    )
    assert broken_links(page) == ["missing.md", "#nope"]
