"""Every file path that the documentation or a docstring cites exists in the repository.

Scanned: ``README.md``, ``docs/*.md``, ``benchmarks/*.md`` and the docstrings and comments of
``src/posediffusion/**/*.py`` and ``tools/*.py``. A *citation* is

* the target of a markdown link ``[text](target)``: it must exist relative to the document's folder (as a
  markdown renderer resolves it), and a ``#fragment`` on a ``.md`` target must name one of its headings;
* an inline code span (```x``` in markdown prose, ````x```` in docstrings) that is one path-like token:
  it has a ``/`` and ends in a file extension or ``/`` or starts with a folder of the repository or
  package, or it is a bare ``*.md``/``*.py`` file name (``X/Z``, ``from_dict/to_dict`` or flags are not);
* anywhere in the text (code blocks and prose too), a token that starts with one of the repository's
  top-level folders ``docs/``, ``src/``, ``tests/``, ``tools/``, ``benchmarks/``.

A path resolves if it exists relative to the repository root, the citing file's folder, the package folder
``src/posediffusion/`` (docstrings say ``model/denoiser.py``) or ``src/`` (installed paths such as
``posediffusion/assets/h36m_cameras.json``); a bare file name resolves if a file of that name exists in the
repository; a path starting with ``../`` is relative to the citing file only. What does not resolve must
match one of the two small allowlists below, else the test fails. It also fails on a path that leaves the
repository other than the project's development data, and on any mention of the development-only
documents ``FORMATS.md``, ``CPU_BUDGET.md`` or ``shared/docs``: users do not have them (their facts are in
``docs/formats.md`` and ``docs/model.md``).
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "posediffusion"

#: Things the *user's* commands create or read, named in examples, never files of the repository:
#: the example dataset folder (``data/data_3d_h36m.npz``), run folders and the checkpoints inside them
#: (``checkpoint/run/best``, ``best/``, ``last/``), the demo's output folder, an example input folder,
#: the benchmarks' git-ignored training runs (``runs/``, ``benchmarks/runs/seed1``) and the output folder of
#: the multi-seed ablation (``benchmarks/results/ablation``, created by its first run).
OUTPUT_PREFIXES = ("data/", "checkpoint/", "best/", "last/", "demo_out/", "openpose_json_folder/", "runs/",
                   "benchmarks/runs/", "benchmarks/results/ablation")

#: Files of other projects named in passing: VideoPose3D's ``common/loss.py`` and ``DATASETS.md``, and
#: the research release's three training scripts.
EXTERNAL_FILES = {"common/loss.py", "DATASETS.md", "main.py", "main_gt.py", "main_3dhp.py"}

#: The one place outside the repository a doc may name: this project's development data beside the
#: checkout, as the input of command examples. A doc that does so must say that it is not shipped.
DEVELOPMENT_DATA = "../shared/data/"
NOT_SHIPPED = "not shipped"

FORBIDDEN = ("FORMATS.md", "CPU_BUDGET.md", "shared/docs")

TOP_LEVEL = ("docs", "src", "tests", "tools", "benchmarks")
EXTENSIONS = ("md", "py", "json", "npz", "npy", "yaml", "yml", "toml", "txt", "csv", "mat", "safetensors",
              "pt", "png", "gif", "mp4", "log")
_SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "runs"}

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_MD_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_RST_SPAN = re.compile(r"``([^`\n]+)``")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_BARE_TOP = re.compile(r"(?<![\w/.:~-])((?:" + "|".join(TOP_LEVEL) + r")/[\w./-]*[\w/])")
_PATH_TOKEN = re.compile(r"^(?:\.\.?/)*[\w.-]+(?:/[\w.-]*)*$")
_EXTENSION = re.compile(r"\.(?:" + "|".join(EXTENSIONS) + ")$")


@cache
def _repository_file_names() -> frozenset[str]:
    names = set()
    for _root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        names.update(files)
    return frozenset(names)


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
            *sorted((REPO / "benchmarks").glob("*.md"))]


def _python_files() -> list[Path]:
    return [*sorted(PACKAGE.rglob("*.py")), *sorted((REPO / "tools").glob("*.py"))]


def _python_prose(path: Path) -> str:
    """The docstrings and comments of a Python file."""
    source = path.read_text()
    parts = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            parts.append(token.string)
    return "\n".join(parts)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    text = _FENCE.sub("", md.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def _inside_repo(path: Path) -> bool:
    return path.resolve().is_relative_to(REPO)


def _path_problem(target: str, citing: Path) -> str | None:
    """None if the cited ``target`` is fine, else what is wrong with it."""
    if target.startswith(DEVELOPMENT_DATA):
        return None
    roots = [citing.parent] if target.startswith("../") else [REPO, citing.parent, PACKAGE, PACKAGE.parent]
    candidates = [root / target for root in roots]
    inside = [c for c in candidates if _inside_repo(c)]
    if not inside:
        return "points outside the repository"
    if any(c.exists() for c in inside):
        return None
    if "/" not in target and target in _repository_file_names():
        return None
    if target.startswith(OUTPUT_PREFIXES) or target in EXTERNAL_FILES:
        return None
    return "no such file in the repository"


def _is_path_like(span: str) -> bool:
    """One token that names a file or folder (not a formula, a list of names or a flag)."""
    if not _PATH_TOKEN.match(span) or span.startswith("-"):
        return False
    if "/" not in span:
        return span.endswith((".md", ".py"))
    first = span.split("/")[0]
    return bool(span.endswith("/") or _EXTENSION.search(span) or first in ("..", ".") or first in TOP_LEVEL
                or (PACKAGE / first).is_dir())


def citations(path: Path, kind: str, text: str) -> list[tuple[str, str | None]]:
    """(citation, problem or None) for every path cited in one file's text (kind "md" or "py")."""
    found = []
    prose = _FENCE.sub("", text) if kind == "md" else text
    if kind == "md":
        for match in _LINK.finditer(prose):
            target = match.group(1)
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            file_part, _, fragment = target.partition("#")
            resolved = path.parent / file_part if file_part else path
            if not resolved.exists() or not _inside_repo(resolved):
                found.append((target, "link target does not exist in the repository"))
            elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
                found.append((target, f"no heading with anchor #{fragment}"))
            else:
                found.append((target, None))
    for match in (_MD_SPAN if kind == "md" else _RST_SPAN).finditer(prose):
        span = match.group(1).strip().rstrip(".,;:")
        if _is_path_like(span):
            found.append((span, _path_problem(span, path)))
    for match in _BARE_TOP.finditer(text):
        target = match.group(1)
        found.append((target, _path_problem(target, path)))
    return found


def _scanned() -> list:
    files = [(p, "md", p.read_text()) for p in _markdown_files()]
    files += [(p, "py", _python_prose(p)) for p in _python_files()]
    return [pytest.param(p, kind, text, id=str(p.relative_to(REPO))) for p, kind, text in files]


def test_scanner_finds_citations_of_every_kind():
    md = REPO / "docs" / "x.md"
    text = ("See [m](model.md#public-api), [bad](nope.md), [a](model.md#no-such-heading), "
            "`tools/make_demo_sample.py`, `model/graph.py`, `demo_out/demo.gif`, `docs/missing.md`, "
            "`../../elsewhere/file.txt`, `../shared/seed/x.txt`, `x = X/Z`, `load_yaml/save_yaml`, "
            "`-k/--keypoints`, `denoiser.py`, `absent.py` and\n"
            "```\npython tools/absent.py --out best/\n```\n")
    problems = dict(citations(md, "md", text))
    assert problems.pop("model.md#public-api") is None
    assert problems.pop("tools/make_demo_sample.py") is None and problems.pop("model/graph.py") is None
    assert problems.pop("demo_out/demo.gif") is None  # an output path, allowlisted
    assert problems.pop("denoiser.py") is None  # a bare name of a repository file
    assert problems.pop("../../elsewhere/file.txt") == "points outside the repository"
    assert set(problems) == {"nope.md", "model.md#no-such-heading", "docs/missing.md", "absent.py",
                             "tools/absent.py", "../shared/seed/x.txt"}  # never looked up outside the repo
    assert all(problems.values())
    package_file = PACKAGE / "model" / "x.py"
    ok = ("uses ``docs/formats.md``, ``assets/part_prompts.npy`` (the file's folder) and "
          "``posediffusion/assets/h36m_cameras.json``")
    assert not any(why for _, why in citations(package_file, "py", ok))
    assert dict(citations(package_file, "py", "``docs/gone.md``"))["docs/gone.md"]


@pytest.mark.parametrize("path, kind, text", _scanned())
def test_cited_paths_exist(path, kind, text):
    bad = sorted({f"{cited}: {why}" for cited, why in citations(path, kind, text) if why})
    assert not bad, f"{path.relative_to(REPO)} cites paths that are not in the repository:\n" + "\n".join(bad)


@pytest.mark.parametrize("path, kind, text", _scanned())
def test_no_development_only_documents_are_cited(path, kind, text):
    for name in FORBIDDEN:
        assert name not in text, f"{path.relative_to(REPO)} cites {name}, which users do not have"
    if DEVELOPMENT_DATA in text and path.parent.name != "benchmarks" and kind == "md":
        assert NOT_SHIPPED in " ".join(text.split()), (
            f"{path.relative_to(REPO)} uses {DEVELOPMENT_DATA} without saying that it is the project's "
            f"development data, {NOT_SHIPPED}")
