"""Does the temporal energy regulator follow the body's motion or the detector's jitter? (issue 10)

On the test split of the CMU-derived dataset (``posediffusion prepare mocap --name cmu --seed 0``; prepared
in ``--data-dir`` when missing), for the ground-truth (``gt``) and the detector-like (``det``) 2D of the
same motions, every sequence cut into the model's windows (non-overlapping, the last one shifted to end at
the last frame; every frame counted once), the per-frame gains of a freshly built regulator (the initial
monotone map: the energy's figures do not depend on training, and rank correlations on no map at all):

- ``spearman``: Spearman rank correlation of the gain with the true 3D joint speed (mean over joints of the
  central-difference speed): ``root_relative`` (the pose the model predicts, the speed the accuracy
  benchmark ranks frames by) and ``camera`` (root trajectory included);
- ``median_abs_gain_difference``: median over frames of |gain(gt 2D) - gain(det 2D)|;
- ``mean_gain_slowest_third`` / ``fastest_third``: frames ranked by the root-relative true speed;
- ``mean_gain``: with the regulator on, the sampler smooths with weight ``smoothing * (1 - gain)``, so a
  regulator-off comparison at the same average smoothing uses ``smoothing * (1 - mean_gain)``;
- ``still_jitter``: a still template pose (330 px tall in a 1000 px image) with 3 px Gaussian jitter against
  the same pose without: max and mean |gain difference| over 64 windows.

The same figures for the original energy (``raw_2d``: raw |v| + |a|) are written beside them.

    python benchmarks/energy_check.py --data-dir data/cmu        # writes benchmarks/results/energy_check.json

``--checkpoint RUN/last`` (repeatable) measures the trained gain map of each model instead (its EMA weights
when present, its energy and window length T), and adds ``mean_smoothing_weight`` (overall and per third:
``smoothing * (1 - gain)``, the per-frame weight its sampler and loss use):

    python benchmarks/energy_check.py --data-dir data/cmu --checkpoint runs/seed0/regulator_smoothing_only \
        --out benchmarks/results/energy_check_trained.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

WINDOWS = (9, 27, 81, 243)  # frames of the tiny, small, base and paper presets
ENERGIES = {"smoothed_speed": {"kind": "smoothed_speed", "sigma": 3.0},  # the default
            "raw_2d": {"kind": "raw_2d", "sigma": 1.0}}  # the original energy (old checkpoints)
JITTER_PX, IMAGE_WIDTH_PX, BODY_HEIGHT_PX = 3.0, 1000.0, 330.0
#: A standing Human3.6M-17 skeleton seen from the front: (x, height) in mm (tests/helpers.TEMPLATE_MM).
STILL_POSE_MM = ((0, 900), (-100, 900), (-100, 480), (-100, 80), (100, 900), (100, 480), (100, 80), (0, 1130),
                 (0, 1380), (0, 1480), (0, 1600), (170, 1350), (170, 1080), (170, 830), (-170, 1350),
                 (-170, 1080), (-170, 830))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(common.REPO_ROOT / "data"),
                   help="folder of the CMU-derived dataset (prepared here when missing)")
    p.add_argument("--seed", type=int, default=0, help="seed of `prepare mocap` when the data is prepared")
    p.add_argument("--windows", default=",".join(map(str, WINDOWS)), help="window lengths T to check")
    p.add_argument("--out", default=str(common.RESULTS_DIR / "energy_check.json"))
    p.add_argument("--checkpoint", action="append", default=[],
                   help="a trained model's checkpoint (run folder or RUN/last); repeatable")
    return p.parse_args(argv)


def test_split(data_dir: Path, keypoints: str) -> list:
    """The test sequences (subjects of ``split_cmu.json``) with ``keypoints`` 2D."""
    from posediffusion.data.h36m import load_h36m

    split = json.loads((data_dir / f"split_{common.DATASET_NAME}.json").read_text())
    return load_h36m(data_dir, common.DATASET_NAME, keypoints, subjects=split["test_subjects"])


def joint_speed(pose: np.ndarray) -> np.ndarray:
    """(F, J, 3) metres -> (F,) mean over joints of the central-difference speed (one-sided at the ends)."""
    if len(pose) < 2:
        return np.zeros(len(pose))
    return np.linalg.norm(np.gradient(pose, axis=0), axis=-1).mean(-1)


def sequence_gains(regulator, keypoints_2d: np.ndarray, frames: int) -> np.ndarray:
    """(F,) gain of every frame as the model sees it: T-frame windows, each frame from its first window."""
    import torch

    from posediffusion.data.windows import take_windows, window_starts

    num_frames = len(keypoints_2d)
    starts = window_starts(num_frames, frames, frames)
    windows = torch.from_numpy(take_windows(keypoints_2d, starts, frames)).float()  # (N, T, J, 2)
    with torch.no_grad():
        gains = regulator(windows)[1].numpy()  # (N, T)
    out = np.full(num_frames, np.nan)
    for start, window in zip(starts, gains, strict=True):
        span = slice(start, min(start + frames, num_frames))
        todo = np.isnan(out[span])
        out[span][todo] = window[: span.stop - span.start][todo]
    return out


def split_figures(regulator, sequences: dict[str, list], frames: int) -> dict[str, Any]:
    """Every figure of the module docstring for one energy and window length."""
    from scipy.stats import spearmanr

    gains = {kp: np.concatenate([sequence_gains(regulator, s.keypoints_2d, frames) for s in seqs])
             for kp, seqs in sequences.items()}
    relative = np.concatenate([joint_speed(s.pose_3d) for s in sequences["gt"]])
    camera = np.concatenate([joint_speed(s.pose_3d + s.trajectory[:, None]) for s in sequences["gt"]])
    slow, fast = relative <= np.quantile(relative, 1 / 3), relative >= np.quantile(relative, 2 / 3)
    out: dict[str, Any] = {"frames": int(len(relative)),
                           "median_abs_gain_difference": float(np.median(np.abs(gains["gt"] - gains["det"])))}
    for kp, gain in gains.items():
        out[kp] = {"spearman_root_relative": float(spearmanr(gain, relative)[0]),
                   "spearman_camera": float(spearmanr(gain, camera)[0]),
                   "mean_gain": float(gain.mean()),
                   "mean_gain_slowest_third": float(gain[slow].mean()),
                   "mean_gain_fastest_third": float(gain[fast].mean())}
    return out


def still_jitter(regulator, frames: int, batch: int = 64, seed: int = 0) -> dict[str, float]:
    """Max and mean |gain difference| between a still pose with 3 px Gaussian jitter and the same pose."""
    import torch

    from posediffusion.model.motion import body_size

    template = np.array(STILL_POSE_MM, dtype=np.float32) * np.array([1.0, -1.0], np.float32)  # image y down
    pose = torch.from_numpy(template / np.ptp(template[:, 1]) * (2 * BODY_HEIGHT_PX / IMAGE_WIDTH_PX))
    clean = pose.expand(batch, frames, *pose.shape).clone()
    sigma = 2 * JITTER_PX / IMAGE_WIDTH_PX  # pixels -> normalised units (u / w * 2 - 1)
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        difference = (regulator(noisy)[1] - regulator(clean)[1]).abs()
    return {"max_abs_gain_difference": float(difference.max()), "mean_abs_gain_difference":
            float(difference.mean()), "jitter_in_body_sizes": float(sigma / body_size(clean)[0])}


def trained_maps(args: argparse.Namespace, sequences: dict[str, list]) -> dict[str, Any]:
    """The figures of each ``--checkpoint``'s trained regulator at its own T, with its smoothing weights."""
    from posediffusion.checkpoint import load_model

    out: dict[str, Any] = {}
    for path in args.checkpoint:
        model, checkpoint = load_model(path)
        regulator, frames = model.denoiser.energy, model.config.model.frames
        if regulator is None:
            raise SystemExit(f"{path}: this model has no energy regulator")
        figures = split_figures(regulator, sequences, frames)
        s = model.smoothing()
        for kp in ("gt", "det"):
            figures[kp]["mean_smoothing_weight"] = {
                part: s * (1 - figures[kp][f"mean_gain{suffix}"])
                for part, suffix in (("all", ""), ("slowest_third", "_slowest_third"),
                                     ("fastest_third", "_fastest_third"))}
        figures.update(checkpoint=str(checkpoint.path), weights=checkpoint.metadata["weights"],
                       frames=frames, smoothing=s, energy_uses=model.config.model.energy_uses,
                       slope=float(regulator.slope.detach()), offset=float(regulator.offset.detach()))
        weights = figures["det"]["mean_smoothing_weight"]
        print(f"{path}: slope {figures['slope']:.2f} offset {figures['offset']:.2f}  det smoothing weight "
              f"{weights['all']:.2f} (slowest {weights['slowest_third']:.2f}, fastest "
              f"{weights['fastest_third']:.2f})  spearman det {figures['det']['spearman_root_relative']:.3f}",
              flush=True)
        out[path] = figures
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.pin_threads(1)
    from posediffusion.model.energy import TemporalEnergyRegulator

    data_dir = common.ensure_dataset(args.data_dir, seed=args.seed)
    start = time.monotonic()
    sequences = {kp: test_split(data_dir, kp) for kp in ("gt", "det")}
    if args.checkpoint:
        payload = {"benchmark": "energy_check (trained maps)", "machine": common.machine_info(),
                   "data_dir": str(data_dir), "test_sequences": len(sequences["gt"]),
                   "models": trained_maps(args, sequences), "seconds": round(time.monotonic() - start, 1)}
        common.write_json(args.out, payload)
        print(f"wrote {args.out}")
        return 0
    results: dict[str, Any] = {}
    for name, settings in ENERGIES.items():
        regulator = TemporalEnergyRegulator(settings["sigma"], settings["kind"])
        results[name] = {"settings": settings, "windows": {}}
        for frames in (int(v) for v in args.windows.split(",")):
            figures = split_figures(regulator, sequences, frames)
            figures["still_jitter"] = still_jitter(regulator, frames)
            results[name]["windows"][str(frames)] = figures
            gt, det = figures["gt"], figures["det"]
            print(f"{name:15s} T={frames:3d}  spearman gt {gt['spearman_root_relative']:.3f} "
                  f"det {det['spearman_root_relative']:.3f} (camera {gt['spearman_camera']:.3f} / "
                  f"{det['spearman_camera']:.3f})  |gt-det| {figures['median_abs_gain_difference']:.3f}  "
                  f"thirds gt {gt['mean_gain_slowest_third']:.2f}/{gt['mean_gain_fastest_third']:.2f} "
                  f"det {det['mean_gain_slowest_third']:.2f}/{det['mean_gain_fastest_third']:.2f}  "
                  f"still+3px max {figures['still_jitter']['max_abs_gain_difference']:.3f}", flush=True)
    payload = {"benchmark": "energy_check", "machine": common.machine_info(), "data_dir": str(data_dir),
               "test_sequences": len(sequences["gt"]), "seconds": round(time.monotonic() - start, 1),
               "energies": results}
    common.write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
