"""Shared helpers of the benchmark scripts: thread pinning, machine facts, dataset (re)creation, JSON out.

Benchmarks are scripts, not library code: they print their results and write them under
``benchmarks/results/`` (atomically, via :mod:`posediffusion.io_utils`).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
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


def write_report(payload: dict[str, Any], out_dir: str | Path, markdown: Callable[[dict[str, Any]], str]
                 ) -> None:
    """``<payload name>.json`` and ``.md`` (``markdown(payload)``) in ``out_dir``, atomically."""
    from posediffusion.io_utils import write_text_atomic

    write_json(Path(out_dir) / f"{payload['name']}.json", payload)
    write_text_atomic(Path(out_dir) / f"{payload['name']}.md", markdown(payload))


def command_line() -> str:
    """This process's command line, shell-quoted (recorded with every result)."""
    return " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])


def score_checkpoints(payload: dict[str, Any], specs: list[tuple[str, str]], score: Callable[[str], Any],
                      out_dir: str | Path, markdown: Callable[[dict[str, Any]], str]) -> None:
    """``payload["checkpoints"][name] = score(path)`` for every ``(path, name)`` (the JSON rewritten after
    each, so a long run keeps what it measured), then the run's wall and CPU seconds and the report
    (:func:`write_report`); prints the markdown."""
    start, cpu_start = time.monotonic(), time.process_time()
    for path, name in specs:
        print(f"[{name}] {path}", flush=True)
        payload["checkpoints"][name] = score(path)
        write_json(Path(out_dir) / f"{payload['name']}.json", payload)
    payload["run_seconds"] = {"wall": round(time.monotonic() - start, 1),
                              "cpu": round(time.process_time() - cpu_start, 1)}
    write_report(payload, out_dir, markdown)
    print(markdown(payload))


def add_lift_benchmark_arguments(p: Any, *, name: str, smoke: dict[str, Any]) -> None:
    """The flags every checkpoint-scoring benchmark shares: checkpoints, data, takes, the sampler (H, K
    and flip default to ``lift.FAST_SAMPLING``, what ``lift`` uses), outputs, smoke and report-only."""
    from posediffusion.lift import FAST_SAMPLING

    p.add_argument("--checkpoint", action="append", default=None, metavar="PATH[:NAME]",
                   help="checkpoint folder and a table name (repeatable; default: the bundled model)")
    p.add_argument("--data-dir", default="/work/data_cmu", help="CMU-derived dataset (prepared when absent)")
    p.add_argument("--frames", type=int, default=240, help="first N frames of every take")
    p.add_argument("--max-sequences", type=int, default=None, help="first S takes only (sizing)")
    p.add_argument("--hypotheses", type=int, default=FAST_SAMPLING["hypotheses"], help="H")
    p.add_argument("--steps", type=int, default=FAST_SAMPLING["steps"], help="K DDIM steps")
    p.add_argument("--flip", type=int, choices=(0, 1), default=int(FAST_SAMPLING["flip"]), help="flip TTA")
    p.add_argument("--seed", type=int, default=0, help="sampler seed, the same for every condition")
    p.add_argument("--batch-size", type=int, default=16,
                   help="windows per sampler call (evaluate's 64 ran 2.3x slower per frame here)")
    p.add_argument("--out-dir", default=str(RESULTS_DIR))
    p.add_argument("--name", default=name, help="output file stem (--smoke appends _smoke)")
    p.add_argument("--smoke", action="store_true",
                   help=f"seconds-long run: {', '.join(f'{k}={v}' for k, v in smoke.items())}")
    p.add_argument("--report-only", action="store_true", help="only rebuild the .md from the JSON")


def parse_lift_benchmark_arguments(p: Any, argv: list[str] | None, smoke: dict[str, Any]) -> Any:
    """Parse; ``--smoke`` applies ``smoke`` and appends ``_smoke`` to the name; ``--frames`` must be >= 2."""
    args = p.parse_args(argv)
    if args.smoke:
        args.__dict__.update(smoke)
        args.name += "_smoke"
    if args.frames < 2:
        p.error("--frames must be >= 2")
    return args


def parse_checkpoint(spec: str) -> tuple[str, str]:
    """``"PATH[:NAME]"`` -> (path, name); the name defaults to the folder's name (``last``: its parent's)."""
    path, sep, name = spec.rpartition(":")
    if not sep or "/" in name or not path:
        path, name = spec, ""
    folder = Path(path)
    return path, name or (folder.parent.name if folder.name in ("last", "best") else folder.name)


def start_lift_benchmark(args: Any, markdown: Callable[[dict[str, Any]], str]
                         ) -> list[tuple[str, str]] | None:
    """``--report-only``: rebuild the report from the JSON and return ``None``. Else pin one thread and
    return the ``(path, name)`` of every ``--checkpoint`` (default: the bundled model), names distinct."""
    out_dir = Path(args.out_dir)
    if args.report_only:
        write_report(read_json(out_dir / f"{args.name}.json"), out_dir, markdown)
        return None
    pin_threads(1)
    from posediffusion.lift import bundled_checkpoint

    specs = [parse_checkpoint(c) for c in args.checkpoint or [f"{bundled_checkpoint()}:bundled"]]
    if len({name for _, name in specs}) != len(specs):
        raise ValueError(f"checkpoint names must differ: {[name for _, name in specs]} (use PATH:NAME)")
    ensure_dataset(args.data_dir, seed=0)
    return specs


def camera_takes(args: Any, keypoints: str, split: str = "test") -> list:
    """The takes of ``split`` seen by ``args.camera`` (one view each, ``keypoints`` 2D), cut to their first
    ``args.frames`` frames, the first ``args.max_sequences`` of them. ``split``: ``"test"`` (S9, S11) or
    ``"validation"`` (the takes ``train`` carves off the training subjects with its defaults,
    ``val_fraction`` 0.1 and seed 0, as the bundled model was trained)."""
    from posediffusion.config import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS
    from posediffusion.data.augment import one_view_per_take
    from posediffusion.data.h36m import load_h36m
    from posediffusion.data.selection import split_validation, truncate_sequence

    subjects = H36M_TEST_SUBJECTS if split == "test" else H36M_TRAIN_SUBJECTS
    sequences = one_view_per_take(load_h36m(args.data_dir, DATASET_NAME, keypoints, subjects=subjects,
                                            camera_ids=(args.camera,)))
    if split == "validation":
        sequences = split_validation(sequences, 0.1, 0)[1]
    return [truncate_sequence(s, args.frames) for s in sequences[: args.max_sequences]]


def p_agg_estimates(model: Any, keypoints: list, args: Any, **sampling: Any) -> list:
    """P-Agg (F, J, 3) metres of every (F, J, 2) input: ``inference.sample_sequences`` with ``args``'s H, K,
    flip, sampler seed and batch size, and ``sampling`` (eta, stride, weights, visible) passed on."""
    import torch

    from posediffusion.aggregate import pose_aggregate
    from posediffusion.inference import sample_sequences

    generator = torch.Generator().manual_seed(args.seed)
    estimates: list = [None] * len(keypoints)
    for i, merged in sample_sequences(model, keypoints, hypotheses=args.hypotheses, steps=args.steps,
                                      flip=bool(args.flip), generator=generator,
                                      batch_size=args.batch_size, **sampling):
        hyps = merged.result("samples").permute(1, 0, 2, 3)  # (F, H, J, 3) -> (H, F, J, 3)
        estimates[i] = pose_aggregate(hyps).numpy()  # (F, J, 3)
    return estimates


def read_json(path: str | Path) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text())
