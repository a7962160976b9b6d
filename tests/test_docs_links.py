"""Every relative link in README.md and docs/*.md points at a file the repository tracks (a data file that only
exists on the machine that made it is a broken link on every fresh clone)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# [text](target) and ![alt](target), not inside inline code; the target up to a space, ')' or '#'
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def tracked_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {p for p in out.split("\0") if p}


def relative_links(doc: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", doc.read_text())  # links shown as code are examples, not links
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # no http:, mailto: ...


def test_the_link_pattern_finds_what_it_should():
    doc = "see [a](docs/a.md#x), ![b](figures/b.png) and [web](https://example.org) but not `[c](c.md)`"
    found = LINK.findall(re.sub(r"`[^`\n]*`", "", doc))
    assert [t for t in found if not t.startswith("https:")] == ["docs/a.md", "figures/b.png"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_tracked_file(doc: Path):
    tracked = tracked_files()
    broken = []
    for target in relative_links(doc):
        path = (doc.parent / target).resolve()
        try:
            rel = path.relative_to(ROOT).as_posix()
        except ValueError:
            broken.append(f"{target} (outside the repository)")
            continue
        if rel not in tracked and not any(f.startswith(rel.rstrip("/") + "/") for f in tracked):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)} links to files the repository does not track: {broken}"
