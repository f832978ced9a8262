"""Every ```python block of README.md and docs/*.md runs, so the documentation cannot rot.

How the blocks are run:

* **One namespace per page, blocks in order.** A page reads as one session: a later block
  may use the names an earlier one defined (``fun``, ``x0``, ``res``), the way a reader
  would type them into one interpreter. Each page starts from a fresh namespace, so pages
  never depend on each other, and each page is one test (run its blocks top to bottom).
* **Skipping a block.** An HTML comment ``<!-- no-test: reason -->`` on the line right
  before the opening fence skips that block (the reason is shown in the skip report and in
  ``test_skipped_blocks_say_why``). It is for blocks that need what a test cannot have: a
  cluster, a terminal, a file that is not in the repository, or more than a few seconds.
  Rendered pages do not show the comment.
* **Where they run.** In a temporary working directory (blocks may write ``runs.sqlite``),
  with matplotlib on the non-interactive Agg backend. A page whose framework (JAX, torch,
  TensorFlow, Keras) is not installed is skipped as a whole.
* **What a failure says.** The block is compiled under the name of its page with its own
  line numbers, so a traceback points at ``docs/guide.md`` line N.

Other fences (```bash, ```text) are not run.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_OPEN = re.compile(r"^(?P<indent>\s*)```python\s*$")
_SKIP = re.compile(r"^\s*<!--\s*no-test:\s*(?P<reason>.+?)\s*-->\s*$")
_OPTIONAL = ("jax", "optax", "torch", "tensorflow", "keras", "dask", "matplotlib", "tqdm")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the first line of code
    code: str
    skip: str | None  # the reason, for a block marked no-test


def extract(path: Path) -> list[Block]:
    """The ```python blocks of one page, dedented, with their line numbers and skip marks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent = match.group("indent")
        skip = _SKIP.match(lines[i - 1]) if i > 0 else None
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{i + 1}: unclosed ```python block")
        blocks.append(Block(_name(path), i + 2, "\n".join(body) + "\n", skip and skip.group("reason")))
        i = j + 1
    return blocks


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


BLOCKS = {_name(path): extract(path) for path in PAGES}


def _imports(blocks: list[Block]) -> set[str]:
    """The optional dependencies a page's blocks import."""
    code = "".join(block.code for block in blocks if block.skip is None)
    return {module for module in _OPTIONAL if re.search(rf"^\s*(import|from) {module}\b", code, re.M)}


@pytest.fixture
def fresh_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.parametrize("page", [page for page, blocks in BLOCKS.items() if blocks])
def test_page_runs(page, fresh_directory):
    blocks = BLOCKS[page]
    missing = sorted(module for module in _imports(blocks) if importlib.util.find_spec(module) is None)
    if missing:
        pytest.skip(f"{page} needs {', '.join(missing)}")
    namespace: dict = {"__name__": "__main__"}
    for block in blocks:
        if block.skip is not None:
            continue
        # leading newlines put the code at its own line numbers in tracebacks
        source = "\n" * (block.line - 1) + block.code
        try:
            exec(compile(source, str(ROOT / block.page), "exec"), namespace)  # noqa: S102
        except Exception as exc:
            exc.add_note(f"in the ```python block at {block.page}:{block.line - 1}")
            raise


def test_skipped_blocks_say_why():
    skipped = [block for blocks in BLOCKS.values() for block in blocks if block.skip is not None]
    for block in skipped:
        assert len(block.skip) > 10, f"{block.page}:{block.line - 1}: give a reason in <!-- no-test: reason -->"
    # skipping is the exception: most of the documentation must run
    total = sum(len(blocks) for blocks in BLOCKS.values())
    assert len(skipped) <= total // 5, f"{len(skipped)} of {total} blocks are skipped"


def test_every_page_is_in_the_site():
    """mkdocs.yml's nav lists every page of docs/ (README.md is the repository's front page)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for path in sorted((ROOT / "docs").glob("*.md")):
        assert re.search(rf":\s*{re.escape(path.name)}\s*$", nav, re.M), f"{path.name} is not in mkdocs.yml's nav"


def test_getting_started_agrees_with_the_readme():
    """docs/index.md repeats the README's two set-up commands and its quickstart, verbatim."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    setup = re.search(r"## Set-up: two commands\s+```bash\n(.*?)```", readme, re.S).group(1)
    assert setup in index, "docs/index.md must show the README's set-up commands"
    quickstart = re.search(r"## Quickstart\s+```python\n(.*?)```", readme, re.S).group(1)
    assert quickstart in index, "docs/index.md must show the README's quickstart"


def test_extract_reads_marks_and_indentation(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- no-test: needs a cluster -->\n```python\nx = 1\n```\n\n- item\n\n  ```python\n  y = 2\n  ```\n")
    first, second = extract(page)
    assert (first.code, first.skip, first.line) == ("x = 1\n", "needs a cluster", 5)
    assert (second.code, second.skip) == ("y = 2\n", None)
