"""Every relative link of README.md and docs/**/*.md resolves: the file (or image, or folder) exists, and an
`#anchor` names a heading of its page under GitHub's slug rules (or an explicit `<a id=...>`/`<a name=...>`).

Links to other sites (http, https, mailto, any `scheme:`) are not checked, nor links inside fenced code
blocks or inline code, where they are text, not links.
"""

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
# [text](target) and ![alt](target), an optional "title" after the target; the target may be in <...>.
INLINE_LINK = re.compile(r"\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def strip_inline_code(line: str) -> str:
    """The line with each code span (a run of n backticks up to the next run of exactly n) blanked out."""
    out, i = [], 0
    while i < len(line):
        if line[i] != "`":
            out.append(line[i])
            i += 1
            continue
        n = len(line) - i - len(line[i:].lstrip("`"))
        close = re.compile(rf"(?<!`)`{{{n}}}(?!`)").search(line, i + n)
        if close is None:  # no closing run: the backticks are literal
            out.append(line[i : i + n])
            i += n
        else:
            out.append(" " * (close.end() - i))
            i = close.end()
    return "".join(out)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks, inline code blanked out."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None:
            closing = opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence)
            if closing and not line.strip().lstrip(fence[0]):  # a closing fence has no info string
                fence = None
        else:
            lines.append((number, strip_inline_code(line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text as rendered, lowercased, punctuation but - and _ removed,
    spaces to hyphens (`Trackers: Weights & Biases` -> `trackers-weights--biases`)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image: its text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats get -1, -2, ...) and explicit HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}

    def add(heading: str) -> None:
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")

    raw = {number: line for number, line in enumerate(text.splitlines(), start=1)}
    previous = None
    for number, line in prose_lines(text):
        heading = ATX_HEADING.match(raw[number])
        if heading:
            add(heading.group(1) or "")
        elif SETEXT_UNDERLINE.match(line) and previous is not None and previous[0] == number - 1:
            prior = raw[previous[0]]
            if prior.strip() and not ATX_HEADING.match(prior) and not prior.lstrip().startswith(("|", ">")):
                add(prior.strip())
        found.update(HTML_ANCHOR.findall(line))
        previous = (number, line)
    return found


def link_targets(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link and image outside code."""
    targets = []
    for number, line in prose_lines(text):
        found = [*INLINE_LINK.findall(line), *REFERENCE_DEFINITION.findall(line), *HTML_LINK.findall(line)]
        targets += [(number, target.strip("<>")) for target in found]
    return targets


def broken_links(files: list[Path], root: Path) -> list[str]:
    """`file:line: target` for each relative link of the files that does not resolve."""
    broken, pages = [], {}

    def page_anchors(path: Path) -> set[str]:
        if path not in pages:
            pages[path] = anchors(path.read_text(encoding="utf-8"))
        return pages[path]

    for file in files:
        for number, target in link_targets(file.read_text(encoding="utf-8")):
            if not target or SCHEME.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            path = (file.parent / unquote(path_part)).resolve() if path_part else file.resolve()
            ok = path.exists()
            if ok and anchor and path.is_file() and path.suffix.lower() == ".md":
                ok = unquote(anchor) in page_anchors(path)
            if not ok:
                broken.append(f"{file.relative_to(root)}:{number}: {target}")
    return broken


def documentation_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def test_every_relative_link_and_anchor_resolves():
    broken = broken_links(documentation_files(), ROOT)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_listed_in_the_docs_index():
    index = ROOT / "docs" / "README.md"
    listed = {
        (index.parent / target.partition("#")[0]).resolve() for _, target in link_targets(index.read_text())
    }
    unlisted = [str(p.relative_to(ROOT)) for p in documentation_files()[1:] if p != index and p not in listed]
    assert not unlisted, f"docs pages missing from {index.relative_to(ROOT)}: {unlisted}"


def test_slug_follows_github():
    assert slug("Trackers: Weights & Biases and MLflow") == "trackers-weights--biases-and-mlflow"
    assert (
        slug("The study: pooling × padding × activation, 3 seeds")
        == "the-study-pooling--padding--activation-3-seeds"
    )
    assert slug("Comparing the runs of a sweep: `src.report`") == "comparing-the-runs-of-a-sweep-srcreport"
    assert slug("Start-up: seconds to the_first **answer**") == "start-up-seconds-to-the_first-answer"


def test_checker_reports_broken_file_links_and_anchors(tmp_path):
    (tmp_path / "docs" / "img").mkdir(parents=True)
    (tmp_path / "docs" / "img" / "a.png").write_bytes(b"")
    (tmp_path / "docs" / "page.md").write_text(
        '# Page\n\n## Same name\n\n## Same name\n\nText\n----\n\n<a id="custom"></a>\n', encoding="utf-8"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top: the *first* heading\n"
        "[ok](docs/page.md) ![img](docs/img/a.png) [dup](docs/page.md#same-name-1) [set](docs/page.md#text)\n"
        "[self](#top-the-first-heading) [html id](docs/page.md#custom) [dir](docs/) [web](https://x.org/y)\n"
        "[missing file](docs/nope.md) ![missing image](docs/img/b.png)\n"
        "[missing anchor](docs/page.md#no-such-heading) and [here](#nowhere)\n"
        "`[in code](gone.md)` and ``[two ` ticks](gone2.md)``\n"
        "```bash\n[in a fence](gone3.md)\n```\n"
        "[ref]: docs/missing-ref.md\n",
        encoding="utf-8",
    )
    assert broken_links([readme, tmp_path / "docs" / "page.md"], tmp_path) == [
        "README.md:4: docs/nope.md",
        "README.md:4: docs/img/b.png",
        "README.md:5: docs/page.md#no-such-heading",
        "README.md:5: #nowhere",
        "README.md:10: docs/missing-ref.md",
    ]
