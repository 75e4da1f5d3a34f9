"""Copy the summary block of benchmarks/RESULTS.md into README.md, so that no number is copied by hand.

The block is everything between ``<!-- summary:start -->`` and ``<!-- summary:end -->`` (markers
included) in RESULTS.md; it replaces the same block in README.md. Exit status 1 (with a message) when
either file lacks the markers, or has them more than once or in the wrong order.

    python benchmarks/update_readme.py [--results benchmarks/RESULTS.md] [--readme README.md] [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- summary:start -->", "<!-- summary:end -->"


def block_span(text: str, source: Path) -> tuple[int, int]:
    """(start, end) character offsets of the marked block, end just past the end marker.

    Raises ``ValueError`` naming ``source`` when the markers are missing, repeated or out of order.
    """
    starts, ends = text.count(START), text.count(END)
    if starts != 1 or ends != 1:
        raise ValueError(f"{source}: needs exactly one '{START}' and one '{END}' marker "
                         f"(found {starts} and {ends})")
    start, end = text.index(START), text.index(END)
    if end < start:
        raise ValueError(f"{source}: '{END}' comes before '{START}'")
    return start, end + len(END)


def updated_readme(results_text: str, readme_text: str, results: Path, readme: Path) -> str:
    """README text with its marked block replaced by the one from RESULTS.md."""
    r_start, r_end = block_span(results_text, results)
    m_start, m_end = block_span(readme_text, readme)
    return readme_text[:m_start] + results_text[r_start:r_end] + readme_text[m_end:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(REPO_ROOT / "benchmarks" / "RESULTS.md"))
    p.add_argument("--readme", default=str(REPO_ROOT / "README.md"))
    p.add_argument("--check", action="store_true", help="only report whether README.md is up to date")
    args = p.parse_args(argv)
    results, readme = Path(args.results), Path(args.readme)
    try:
        for path in (results, readme):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: file not found")
        new = updated_readme(results.read_text(), readme.read_text(), results, readme)
    except (ValueError, FileNotFoundError) as err:
        print(f"update_readme: {err}", file=sys.stderr)
        return 1
    if new == readme.read_text():
        print(f"{readme}: summary block already up to date")
        return 0
    if args.check:
        print(f"{readme}: summary block differs from {results}; run benchmarks/update_readme.py")
        return 1
    from posediffusion.io_utils import write_text_atomic

    write_text_atomic(readme, new)
    print(f"{readme}: summary block updated from {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
