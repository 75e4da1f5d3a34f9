"""The figures the docs quote are the recorded benchmark outputs (copied by benchmarks/update_readme.py)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_copied_benchmark_blocks_are_current():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "update_readme.py"), "--check"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model_doc = (REPO / "docs" / "model.md").read_text()
    speed = (REPO / "benchmarks" / "results" / "speed.md").read_text().strip()
    assert speed and speed in model_doc  # the one set of speed figures, verbatim
