"""In-the-wild lifting: a 2D keypoint track of any length -> 3D poses, hypotheses and per-joint uncertainty.

The model takes windows of exactly ``T = config.model.frames`` frames. A clip of F frames is cut into
overlapping windows (stride ``T // 2`` by default), windows are lifted in batches (H hypotheses folded into
the batch, flip test-time augmentation batched with the original), aggregated per window, and merged back
with a Hann taper so window seams do not show: ``inference.sample_sequences``, the loop ``evaluate`` uses
too. Memory is bounded: only the merged (F, 17, 3) sums are kept unless all hypotheses are requested.

Aggregation (names and labels as everywhere, ``aggregate.estimate_label``): ``"p-agg"``, the mean of the
hypotheses (P-Agg), by default; ``"j-agg"`` is J-Agg with the camera-free ``weak_perspective`` root source
(for each joint and frame the hypothesis whose weak-perspective reprojection is nearest the input
keypoint). The old names ``"pose"`` and ``"joint"`` are still accepted. Both are always computed from the
same samples (``LiftResult.alternatives``). P-Agg is the default because on the validation takes it had
lower MPJPE, P-MPJPE and half the velocity error (benchmarks/bundled/aggregation_on_validation.json):
choosing joints independently per frame jitters.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posediffusion.aggregate import estimate_label, hypothesis_spread, joint_aggregate, pose_aggregate
from posediffusion.camera import normalize_screen
from posediffusion.checkpoint import load_model
from posediffusion.data.keypoints import check_image_size, load_keypoints
from posediffusion.data.windows import window_starts
from posediffusion.inference import sample_sequences
from posediffusion.io_utils import atomic_path, check_output_folder, save_npz_atomic, write_text_atomic
from posediffusion.metrics import mpjpe, p_mpjpe
from posediffusion.render import render_animation
from posediffusion.runtime import resolve_device
from posediffusion.skeleton import H36M_17, root_relative

log = logging.getLogger(__name__)

#: The aggregations lift offers (those that need neither ground truth nor a camera), in report order.
AGGREGATIONS = ("j-agg", "p-agg")
#: Old names of ``AGGREGATIONS`` (``--aggregation joint|pose``), still accepted.
AGGREGATION_ALIASES = {"joint": "j-agg", "pose": "p-agg"}
#: J-Agg without a camera: hypotheses are reprojected by a per-frame weak-perspective fit.
ROOT_SOURCE = "weak_perspective"


def canonical_aggregation(name: str) -> str:
    """``"p-agg"`` or ``"j-agg"`` for a lift aggregation name or its old alias; ``ValueError`` otherwise."""
    canonical = AGGREGATION_ALIASES.get(name, name)
    if canonical not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS} (or the old names "
                         f"{tuple(AGGREGATION_ALIASES)}), got {name!r}")
    return canonical


@dataclass
class LiftResult:
    """Output of :func:`lift_keypoints`.

    Attributes:
        pose_3d: (F, 17, 3) float32, metres, root-relative, camera-aligned axes (x right, y down, z forward).
        uncertainty: (F, 17) float32, metres: mean distance of the hypotheses from their mean per joint.
        keypoints_2d: (F, 17, 2) float32 input pixels (gaps filled).
        image_size: (width, height).
        hypotheses: (H, F, 17, 3) float32 or ``None`` (only when requested).
        filled: (F, 17) bool, joints that were missing in the input and filled over time.
        alternatives: aggregation label -> (F, 17, 3): every aggregation of the same samples (J-Agg and
            P-Agg), so they can be compared without sampling twice.
        settings: everything needed to reproduce the result (checkpoint, H, K, flip, aggregation, ...).
    """

    pose_3d: np.ndarray
    uncertainty: np.ndarray
    keypoints_2d: np.ndarray
    image_size: tuple[int, int]
    hypotheses: np.ndarray | None = None
    filled: np.ndarray | None = None
    fps: float = 50.0
    alternatives: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path, ground_truth: np.ndarray | None = None) -> Path:
        """Write the npz read by ``posediffusion render`` (atomic)."""
        arrays: dict[str, Any] = {
            "pose_3d": self.pose_3d, "uncertainty": self.uncertainty, "keypoints_2d": self.keypoints_2d,
            "image_size": np.asarray(self.image_size, dtype=np.int64), "fps": np.float32(self.fps),
            "settings": np.asarray(_json(self.settings)),
        }
        if self.hypotheses is not None:
            arrays["hypotheses"] = self.hypotheses
        if self.filled is not None:
            arrays["filled"] = self.filled
        if ground_truth is not None:
            arrays["ground_truth"] = np.asarray(ground_truth, dtype=np.float32)
        save_npz_atomic(path, **arrays)
        return Path(path)

    def save_json(self, path: str | Path) -> Path:
        """Write pose, uncertainty and settings as JSON (frames x joints x xyz, metres)."""
        payload = {"units": "metres", "joint_order": "h36m17", "fps": self.fps, "settings": self.settings,
                   "pose_3d": np.round(self.pose_3d, 5).tolist(),
                   "uncertainty": np.round(self.uncertainty, 5).tolist()}
        write_text_atomic(path, _json(payload))
        return Path(path)

    def save_csv(self, path: str | Path) -> Path:
        """Write a long CSV: ``frame,joint,x,y,z,uncertainty`` (metres)."""
        lines = ["frame,joint,x,y,z,uncertainty"]
        for f in range(len(self.pose_3d)):
            for j, name in enumerate(H36M_17.joints):
                x, y, z = self.pose_3d[f, j]
                lines.append(f"{f},{name},{x:.5f},{y:.5f},{z:.5f},{self.uncertainty[f, j]:.5f}")
        write_text_atomic(path, "\n".join(lines) + "\n")
        return Path(path)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)


def _check_track(pixels: np.ndarray, image_size: tuple[int, int], frames: int) -> None:
    """Shape, finiteness and plausibility of a pixel track: most points inside the image, none more than
    one image size outside it (``load_keypoints`` treats those as missing; arrays given here must too)."""
    if pixels.ndim != 3 or pixels.shape[1:] != (17, 2):
        raise ValueError(f"keypoints must be (F, 17, 2) pixels in Human3.6M order, got {pixels.shape}")
    if len(pixels) < 2:
        raise ValueError(f"need at least 2 frames to lift, got {len(pixels)}")
    if not np.isfinite(pixels).all():
        raise ValueError("keypoints contain NaN or infinite values; fill gaps first (load_keypoints does)")
    if np.abs(pixels).max() == 0:
        raise ValueError("keypoints are all zero")
    w, h = image_size
    u, v = pixels[..., 0], pixels[..., 1]
    outside = ~((u >= 0) & (u <= w) & (v >= 0) & (v <= h))
    if outside.mean() > 0.5:
        raise ValueError(f"image size {w}x{h} cannot hold the keypoints: {100.0 * outside.mean():.0f}% of "
                         f"them lie outside it (coordinates up to {float(np.abs(pixels).max()):.4g} px)")
    far = (u < -w) | (u > 2 * w) | (v < -h) | (v > 2 * h)
    if far.any():
        f, j = np.argwhere(far)[0]
        raise ValueError(f"{int(far.sum())} keypoint(s) lie more than one image size outside the {w}x{h} "
                         f"image (first: frame {f}, joint {H36M_17.joints[j]}); mark them missing (NaN) "
                         "and fill them (load_keypoints does)")
    log.debug("lifting %d frames in %d-frame windows", len(pixels), frames)


@torch.no_grad()
def lift_keypoints(
    keypoints: np.ndarray,
    image_size: tuple[int, int],
    model: torch.nn.Module,
    *,
    hypotheses: int = 5,
    steps: int = 5,
    flip: bool = True,
    aggregation: str = "p-agg",
    stride: int | None = None,
    batch_windows: int = 8,
    keep_hypotheses: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> LiftResult:
    """Lift an (F, 17, 2) pixel track of any length F >= 2 to 3D.

    Args:
        keypoints: (F, 17, 2) pixels, Human3.6M joint order, NaN-free.
        image_size: (width, height) of the video, pixels.
        model: a :class:`posediffusion.PoseDiffusion` (eval mode; its device is used).
        hypotheses: H >= 1 samples per window.
        steps: K >= 1 DDIM steps.
        flip: flip test-time augmentation.
        aggregation: ``"p-agg"`` (P-Agg, the mean; default) or ``"j-agg"`` (J-Agg, camera-free weak
            perspective); the old names ``"pose"`` / ``"joint"`` are accepted. P-Agg is the default because
            it measured better on the validation takes (benchmarks/bundled/aggregation_on_validation.json),
            above all in velocity error.
        stride: window stride (default T // 2, at least 1): overlap smooths window seams.
        batch_windows: windows per network batch (memory ~ batch_windows x H x T).
        keep_hypotheses: also return all (H, F, 17, 3) hypotheses, merged over windows.
        seed: makes the result deterministic.
        progress: show a tqdm bar.
    """
    aggregation = canonical_aggregation(aggregation)
    pixels = np.asarray(keypoints, dtype=np.float32)
    frames = model.config.model.frames
    image_size = check_image_size(image_size, "image_size")
    _check_track(pixels, image_size, frames)
    stride = max(frames // 2, 1) if stride is None else stride
    normalised = normalize_screen(pixels, *image_size).astype(np.float32)  # (F, 17, 2)
    [(_, merged)] = list(sample_sequences(
        model, [normalised], hypotheses=hypotheses, steps=steps, flip=flip,
        generator=torch.Generator().manual_seed(seed), stride=stride, batch_size=batch_windows,
        weights="hann", values=partial(_window_values, keep_hypotheses=keep_hypotheses), progress=progress))
    # merging keeps the root at 0; root_relative guards against rounding
    poses = {name: root_relative(merged.result(name).astype(np.float32)) for name in AGGREGATIONS}
    labels = {name: estimate_label(name, ROOT_SOURCE) for name in AGGREGATIONS}
    hyps = merged.result("hypotheses").astype(np.float32).transpose(1, 0, 2, 3) if keep_hypotheses else None
    return LiftResult(
        pose_3d=poses[aggregation],
        uncertainty=merged.result("spread").astype(np.float32),
        keypoints_2d=pixels,
        image_size=image_size,
        hypotheses=hyps,
        alternatives={labels[name]: pose for name, pose in poses.items()},
        settings={"hypotheses": hypotheses, "steps": steps, "flip": flip, "seed": seed, "stride": stride,
                  "aggregation": labels[aggregation], "frames_per_window": frames,
                  "windows": len(window_starts(len(pixels), frames, stride))},
    )


def _window_values(hyps: torch.Tensor, x2d: torch.Tensor, keep_hypotheses: bool) -> dict[str, np.ndarray]:
    """What lift merges from a batch: hyps (n, H, T, 17, 3), x2d (n, T, 17, 2) -> {name: (n, T, ...)}.

    Both aggregations, the hypothesis spread and optionally every hypothesis, as float64 numpy: only the
    per-batch values live on the model's device, the clip-long sums stay on the CPU.
    """
    values = {
        "j-agg": joint_aggregate(hyps, x2d, camera=None, root_source=ROOT_SOURCE),  # (n, T, 17, 3)
        "p-agg": pose_aggregate(hyps),  # (n, T, 17, 3)
        "spread": hypothesis_spread(hyps),  # (n, T, 17)
    }
    if keep_hypotheses:
        values["hypotheses"] = hyps.permute(0, 2, 1, 3, 4)  # (n, T, H, 17, 3)
    return {name: value.detach().cpu().double().numpy() for name, value in values.items()}


def lift_file(
    path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    format: str = "auto",
    image_size: tuple[int, int] | None = None,
    min_confidence: float = 0.3,
    person: int | None = None,
    device: str = "cpu",
    **options: Any,
) -> LiftResult:
    """Read a keypoint file (any supported format), lift it, and return the result.

    ``checkpoint=None`` uses the bundled CPU model. ``options`` go to :func:`lift_keypoints`. The device is
    checked before the file is read.
    """
    resolve_device(device)
    track = load_keypoints(path, format=format, image_size=image_size, min_confidence=min_confidence,
                           person=person)
    model, source = load_lifter(checkpoint, device=device)
    result = lift_keypoints(track.pixels, track.image_size, model, **options)
    result.filled = track.filled
    result.fps = track.fps if track.fps is not None else 50.0
    result.settings.update({"checkpoint": source, "input": str(path), "format": track.source_format,
                            "filled_joints": int(track.filled.sum()),
                            "far_outside_joints": track.far_outside})
    return result


def bundled_checkpoint() -> Path:
    """Folder of the small CPU model shipped in the package (see docs/bundled-model.md)."""
    return Path(str(files("posediffusion") / "assets" / "cmu_small"))


def load_lifter(checkpoint: str | Path | None, device: str = "cpu") -> tuple[torch.nn.Module, str]:
    """Load a model for lifting: a checkpoint path, or the bundled model when ``None``.

    ``device`` as :func:`posediffusion.runtime.resolve_device` takes it (``cpu``, ``cuda``, ``cuda:N``,
    ``auto``); an unknown or unavailable device is a ``ValueError`` naming ``--device``.
    """
    torch_device = resolve_device(device)
    path = bundled_checkpoint() if checkpoint is None else Path(checkpoint)
    if not path.exists():
        hint = " (the bundled model is missing from this install)" if checkpoint is None else ""
        raise FileNotFoundError(f"checkpoint not found: {path}{hint}")
    model, _ = load_model(path, device=torch_device)
    return model, str(path)


def bundled_sample() -> Path:
    """The bundled demo keypoints (held-out CMU motion, detector-like 2D, with ground truth)."""
    return Path(str(files("posediffusion") / "assets" / "sample_keypoints.npz"))


def demo(out_dir: Path, *, checkpoint: str | Path | None = None, hypotheses: int = 5, steps: int = 5,
         render: bool = True, render_frames: int = 100, device: str = "cpu") -> dict[str, Any]:
    """Lift the bundled sample, score it against its ground truth, write npz (+ gif); return a report.

    ``out_dir`` is checked before anything runs; the npz and the gif are written together or not at all.
    """
    out_dir = check_output_folder(out_dir, flag="--out")
    sample = np.load(bundled_sample())
    gt = sample["ground_truth"]
    image_size = (int(sample["image_size"][0]), int(sample["image_size"][1]))
    model, source = load_lifter(checkpoint, device=device)
    result = lift_keypoints(sample["keypoints"], image_size, model, hypotheses=hypotheses, steps=steps,
                            seed=0)
    metrics = {f"{label}, H={hypotheses}": {"mpjpe": 1000 * mpjpe(pose, gt),
                                            "p_mpjpe": 1000 * p_mpjpe(pose, gt)}
               for label, pose in result.alternatives.items()}
    result.fps = float(sample["fps"])
    result.settings.update({"checkpoint": source, "input": "bundled sample"})
    written = [out_dir / "demo_prediction.npz"] + ([out_dir / "demo.gif"] if render else [])
    with contextlib.ExitStack() as stack:
        tmp = [stack.enter_context(atomic_path(path, flag="--out")) for path in written]
        result.save(tmp[0], ground_truth=gt)
        if render:
            render_animation(result.keypoints_2d, result.pose_3d, tmp[1], ground_truth=gt,
                             uncertainty=result.uncertainty, fps=result.fps, image_size=image_size,
                             title="posediffusion demo (held-out CMU)", stride=2, max_frames=render_frames)
    return {"description": str(sample["description"]), "frames": len(gt), "hypotheses": hypotheses,
            "steps": steps, "model": source, "metrics_mm": metrics, "written": written}
