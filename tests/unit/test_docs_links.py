"""The docs cannot rot silently: every relative link in README.md and docs/*.md points at a file
that exists (and, with a #fragment, at a heading of that page), the README links every docs
page, and the README's quick-start manifests pass `wakeway validate`."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from wakeway.cli import main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    return LINK.findall(prose(text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: Counter[str] = Counter()
    out = set()
    for _, heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        out.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return out


def broken_links(page: Path) -> list[str]:
    text = page.read_text()
    problems = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}: link {target!r}"
        if not file.exists():
            problems.append(f"{where}: {path} does not exist")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text()):
            problems.append(f"{where}: no heading #{fragment} in {file.relative_to(ROOT)}")
    return problems


def test_the_checker_sees_links_anchors_and_code() -> None:
    text = "# A `b` c: d (e)\n## A `b` c: d (e)\n[x](y.md#z) `[no](link)`\n```\n[no](n)\n```\n"
    assert links(text) == ["y.md#z"]
    assert anchors(text) == {"a-b-c-d-e", "a-b-c-d-e-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README.read_text())}
    assert [str(d.relative_to(ROOT)) for d in DOCS if d.resolve() not in linked] == []


def test_readme_quick_start_manifests_are_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"^```yaml\n(.*?)^```", README.read_text(), re.M | re.S)
    assert blocks, "README has no YAML manifests"
    file = tmp_path / "quickstart.yaml"
    file.write_text("---\n".join(blocks))
    assert main(["validate", str(file)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err, err
    assert "1 HTTPScaledObjects, 1 HTTPRoutes, 1 ReferenceGrants" in out
