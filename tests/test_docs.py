"""The README and docs/ render as written: every code fence is closed (an unclosed one swallows
the rest of the page), every heading is a heading, and every link to a page or a section of a
page goes somewhere. Read with a CommonMark parser (markdown-it-py), as GitHub renders them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def parse(text: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(text)


def unclosed_fences(text: str) -> list[int]:
    """Line numbers (1-based) of code fences that are not closed where the page means them to be.

    A fence is closed only by a line of its marker alone: "``` more words" does not close it, and
    the block then runs on to the next bare marker (or the end of the page), swallowing the
    prose and headings in between. So a fence is reported when it never closes, or when a line
    inside it starts with its marker: the sign that it ran over a fence meant to open or close.
    """
    lines = text.splitlines()
    found = []
    for token in parse(text):
        if token.type != "fence" or token.map is None:
            continue
        start, end = token.map
        last = lines[end - 1].strip() if end - 1 > start else ""
        closed = end - 1 > start and set(last) == {token.markup[0]} and len(last) >= len(token.markup)
        inner = lines[start + 1 : end - 1 if closed else end]
        if not closed or any(line.lstrip().startswith(token.markup) for line in inner):
            found.append(start + 1)
    return found


def heading_lines_outside_code(text: str) -> list[str]:
    """Lines that look like ATX headings, outside code blocks."""
    lines = text.splitlines()
    in_code: set[int] = set()
    for token in parse(text):
        if token.type in ("fence", "code_block") and token.map is not None:
            in_code.update(range(*token.map))
    return [line for number, line in enumerate(lines) if number not in in_code and re.match(r"#{1,6} ", line)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    tokens = parse(text)
    return {slug(tokens[i + 1].content) for i, token in enumerate(tokens) if token.type == "heading_open"}


def links(text: str) -> list[str]:
    found = []
    for token in parse(text):
        for child in token.children or []:
            if child.type == "link_open":
                found.append(str(child.attrs["href"]))
    return found


def test_an_unclosed_fence_is_found():
    # a closing fence with text after it does not close the block (what once hid a whole section)
    text = "# Page\n\n```\ncode\n``` trailing words\n\n## Metrics\n\ntext\n"

    assert unclosed_fences(text) == [3]
    assert heading_lines_outside_code(text) == ["# Page"]


def test_a_fence_that_runs_over_the_next_one_is_found():
    # the same, with a later fence whose bare closing line closes the first one instead
    text = "```\nlog line\n``` Trailing words\n\n## Metrics\n\n```yaml\nkey: value\n```\n\nprose\n"

    assert unclosed_fences(text) == [1]


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_fence_is_closed_and_every_heading_renders(page: Path):
    text = page.read_text()

    assert unclosed_fences(text) == []
    rendered = [token for token in parse(text) if token.type == "heading_open"]
    assert len(rendered) == len(heading_lines_outside_code(text))


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_link_to_a_page_or_section_resolves(page: Path):
    text = page.read_text()
    broken = []
    for href in links(text):
        if re.match(r"[a-z]+:", href):
            continue  # another site
        target, _, anchor = href.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path.read_text())):
            broken.append(href)

    assert broken == []


def test_the_readme_starts_with_the_two_commands():
    blocks = [token.content.strip() for token in parse((ROOT / "README.md").read_text()) if token.type == "fence"]

    assert blocks[:2] == ["bash scripts/run.sh", "bash scripts/test.sh"]
