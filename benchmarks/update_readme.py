"""Copy recorded benchmark figures into the documents that quote them, so that no number is copied by hand.

Each copy replaces a marked block ``<!-- NAME:start --> ... <!-- NAME:end -->`` (markers included) in a
target file:

- ``summary``: the block of benchmarks/RESULTS.md -> README.md;
- ``speed``: all of benchmarks/results/speed.md (written by benchmarks/speed.py) -> docs/model.md and
  benchmarks/RESULTS.md, so every speed figure in the docs is the one set speed.py measured.

Exit status 1 (with a message) when a file lacks its markers, has them more than once or in the wrong order,
or (with ``--check``) when a target is out of date.

    python benchmarks/update_readme.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
SPEED = REPO_ROOT / "benchmarks" / "results" / "speed.md"
#: (block name, source file, whole source is the block, target file)
COPIES = (
    ("summary", RESULTS, False, REPO_ROOT / "README.md"),
    ("speed", SPEED, True, REPO_ROOT / "docs" / "model.md"),
    ("speed", SPEED, True, RESULTS),
)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def block_span(text: str, source: Path, name: str = "summary") -> tuple[int, int]:
    """(start, end) character offsets of the marked block, end just past the end marker.

    Raises ``ValueError`` naming ``source`` when the markers are missing, repeated or out of order.
    """
    start_marker, end_marker = markers(name)
    starts, ends = text.count(start_marker), text.count(end_marker)
    if starts != 1 or ends != 1:
        raise ValueError(f"{source}: needs exactly one '{start_marker}' and one '{end_marker}' marker "
                         f"(found {starts} and {ends})")
    start, end = text.index(start_marker), text.index(end_marker)
    if end < start:
        raise ValueError(f"{source}: '{end_marker}' comes before '{start_marker}'")
    return start, end + len(end_marker)


def source_block(name: str, text: str, source: Path, whole: bool) -> str:
    """The marked block to copy: the source's own block, or the whole source wrapped in markers."""
    if whole:
        start_marker, end_marker = markers(name)
        return f"{start_marker}\n{text.strip()}\n{end_marker}"
    start, end = block_span(text, source, name)
    return text[start:end]


def updated(block: str, target_text: str, target: Path, name: str) -> str:
    """``target_text`` with its marked block replaced by ``block``."""
    start, end = block_span(target_text, target, name)
    return target_text[:start] + block + target_text[end:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only report whether every target is up to date")
    args = p.parse_args(argv)
    stale, texts = [], {}
    try:
        for name, source, whole, target in COPIES:
            for path in (source, target):
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: file not found")
                texts.setdefault(path, path.read_text())
            block = source_block(name, texts[source], source, whole)
            new = updated(block, texts[target], target, name)
            if new != texts[target]:
                stale.append(f"{target.relative_to(REPO_ROOT)} ({name})")
                texts[target] = new
    except (ValueError, FileNotFoundError) as err:
        print(f"update_readme: {err}", file=sys.stderr)
        return 1
    if not stale:
        print("every copied block is up to date")
        return 0
    if args.check:
        print("out of date: " + ", ".join(stale) + "; run benchmarks/update_readme.py")
        return 1
    from posediffusion.io_utils import write_text_atomic

    for _, _, _, target in COPIES:
        write_text_atomic(target, texts[target])
    print("updated: " + ", ".join(stale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
