"""Shared helpers of the benchmark scripts: thread pinning, machine facts, dataset (re)creation, JSON out.

Benchmarks are scripts, not library code: they print their results and write them under
``benchmarks/results/`` (atomically, via :mod:`posediffusion.io_utils`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"
MOCAP_NPZ = SHARED_DATA / "mocap" / "cmu_h36m17_50hz.npz"
DATASET_NAME = "cmu"
DATASET_FILES = (f"data_3d_{DATASET_NAME}.npz", f"data_2d_{DATASET_NAME}_gt.npz",
                 f"data_2d_{DATASET_NAME}_det.npz", f"split_{DATASET_NAME}.json")


def pin_threads(threads: int = 1) -> None:
    """Limit torch (and OpenMP/MKL in child processes) to ``threads`` threads."""
    import torch

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)


def single_thread_env() -> dict[str, str]:
    """Environment for a 1-thread child process (set before torch starts its thread pool)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, python/torch versions, torch threads, UTC date."""
    import torch

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda_available": torch.cuda.is_available(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())}


def ensure_dataset(data_dir: str | Path, mocap: str | Path = MOCAP_NPZ, seed: int = 0) -> Path:
    """Return ``data_dir`` holding the CMU-derived dataset, preparing it first when files are missing.

    Runs ``posediffusion prepare mocap --name cmu --seed <seed>`` (split by motion; ``gt`` and ``det``
    keypoints). Raises ``FileNotFoundError`` when the dataset is absent and the mocap file is too.
    """
    data_dir = Path(data_dir)
    if all((data_dir / name).is_file() for name in DATASET_FILES):
        return data_dir
    mocap = Path(mocap)
    if not mocap.is_file():
        raise FileNotFoundError(f"{data_dir}: dataset missing and mocap source {mocap} not found")
    print(f"preparing the CMU-derived dataset in {data_dir} ...", flush=True)
    command = [sys.executable, "-m", "posediffusion.cli", "prepare", "mocap", "--input", str(mocap),
               "--out", str(data_dir), "--name", DATASET_NAME, "--seed", str(seed)]
    subprocess.run(command, check=True, env=single_thread_env())
    return data_dir


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON atomically."""
    from posediffusion.io_utils import write_text_atomic

    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")
    return Path(path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text())
