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

Missing joints (``Keypoints.filled``: gaps, and joints never seen in the clip, ``Keypoints.inferred``) are
handled by the model when it has a missing-joint input (``ModelConfig.joint_mask``, trained with joint
dropout): :func:`lift_track` passes ``visible = ~filled`` and the network infers those joints from the rest
of the body and the frames where they are seen, ignoring the placeholder coordinates (J-Agg takes P-Agg
for them: there is no keypoint to reproject to). An older model gets today's input: gaps interpolated over
time, never-seen joints placed from a 2D body prior (``data/body_prior.py``), lifted as if measured.
``never_seen`` (``--never-seen``) chooses for never-seen joints only: ``"model"`` (the network infers them;
needs the missing-joint input) or ``"prior"`` (the body-prior placement is lifted as if seen, by any model);
the default (:data:`DEFAULT_NEVER_SEEN` for models with the input) is the one that measured better on the
validation takes (``benchmarks/unseen_joints.py``). Either way never-seen joints are flagged ``inferred``
in every output, and ``settings["inferred_by"]`` says how: ``"model"`` or ``"body prior"``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posediffusion.aggregate import estimate_label, hypothesis_spread, joint_aggregate, pose_aggregate
from posediffusion.camera import normalize_screen
from posediffusion.checkpoint import load_model
from posediffusion.data.keypoints import Keypoints, check_fps, check_image_size, load_keypoints, load_tracks
from posediffusion.data.windows import window_starts
from posediffusion.inference import sample_sequences
from posediffusion.io_utils import atomic_path, check_output_folder, save_npz_atomic, write_text_atomic
from posediffusion.metrics import mpjpe, p_mpjpe
from posediffusion.render import render_animation
from posediffusion.runtime import resolve_device
from posediffusion.scale import check_scale_options, estimate_scale, standing_height
from posediffusion.skeleton import H36M_17, root_relative

log = logging.getLogger(__name__)

#: The aggregations lift offers (those that need neither ground truth nor a camera), in report order.
AGGREGATIONS = ("j-agg", "p-agg")
#: Old names of ``AGGREGATIONS`` (``--aggregation joint|pose``), still accepted.
AGGREGATION_ALIASES = {"joint": "j-agg", "pose": "p-agg"}
#: J-Agg without a camera: hypotheses are reprojected by a per-frame weak-perspective fit.
ROOT_SOURCE = "weak_perspective"
#: Frame rate assumed (for rendering and per-frame velocities) when neither --fps nor the file states one.
DEFAULT_FPS = 50.0
#: Where ``LiftResult.fps`` came from ("metadata": a video's, ``posediffusion video``); only "assumed" means
#: the real rate is unknown.
FPS_SOURCES = ("--fps", "file", "metadata", "assumed")


#: Default sampling of ``lift``/``video``: the fastest setting within 5 % of the best MPJPE in the bundled
#: model's speed-accuracy sweep on its validation takes (benchmarks/RESULTS.md, "The bundled model in
#: today's design"; a rule written before the sweep): 1.046x the best MPJPE at ~100x its speed. One
#: hypothesis has no spread: ``uncertainty`` is NaN unless H >= 2.
FAST_SAMPLING = {"hypotheses": 1, "steps": 1, "flip": True}
#: ``--accurate``: that sweep's most accurate setting (about 100x slower than the fast default).
ACCURATE_SAMPLING = {"hypotheses": 20, "steps": 5, "flip": True}
#: How never-seen joints are inferred (``never_seen``, ``--never-seen``): by the network, or the body prior.
NEVER_SEEN_METHODS = ("model", "prior")
#: The default for a model with the missing-joint input (others can only use ``"prior"``).
DEFAULT_NEVER_SEEN = "model"


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
        pose_3d: (F, 17, 3) float32, metres, root-relative, camera-aligned axes (x right, y down, z forward);
            times ``scale_factor`` (the network's own output when ``scale_method`` is ``"none"``).
        uncertainty: (F, 17) float32, metres: mean distance of the hypotheses from their mean per joint;
            NaN with one hypothesis (H = 1 has no spread to measure; written as null in JSON, empty in CSV).
        keypoints_2d: (F, 17, 2) float32 input pixels (gaps filled).
        image_size: (width, height).
        hypotheses: (H, F, 17, 3) float32 or ``None`` (only when requested).
        filled: (F, 17) bool, joints that were missing in the input and filled over time.
        alternatives: aggregation label -> (F, 17, 3): every aggregation of the same samples (J-Agg and
            P-Agg), so they can be compared without sampling twice.
        settings: everything needed to reproduce the result (checkpoint, H, K, flip, aggregation, ...).
        fps: the frame rate used for rendering and per-frame velocities: ``--fps``, else the file's, else
            ``DEFAULT_FPS``; ``fps_source`` says which ("--fps", "file" or "assumed": the real rate is
            unknown).
        frame_ids: (F,) int64, the input's frame number of each output frame (``None``: 0, 1, ...), so
            output frame i is input frame ``frame_ids[i]``.
        inferred: (F, 17) bool or ``None``: joints never seen in the input; their 3D is inferred, not
            measured: by the model (``settings["inferred_by"] == "model"``, a model with a missing-joint
            input) or lifted from a body-prior placement (``"body prior"``, ``data/body_prior.py``). Their
            2D in ``keypoints_2d`` is the body prior's placement either way. They are also in ``filled``.
        scale_factor: the factor applied to the network's output (pose, uncertainty, hypotheses,
            alternatives), see :func:`rescale`; 1 for the raw output.
        scale_method: how it was chosen: ``"prior"`` (to the reference skeleton), ``"height"`` (to
            ``height``) or ``"none"`` (``posediffusion.scale``).
        height: the standing height the output was scaled to (``--height``), metres, else ``None``.
    """

    pose_3d: np.ndarray
    uncertainty: np.ndarray
    keypoints_2d: np.ndarray
    image_size: tuple[int, int]
    hypotheses: np.ndarray | None = None
    filled: np.ndarray | None = None
    fps: float = DEFAULT_FPS
    alternatives: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    fps_source: str = "assumed"
    frame_ids: np.ndarray | None = None
    inferred: np.ndarray | None = None
    scale_factor: float = 1.0
    scale_method: str = "none"
    height: float | None = None

    @property
    def fps_assumed(self) -> bool:
        """True when no frame rate was given or stored: ``fps`` is ``DEFAULT_FPS``, an assumption."""
        return self.fps_source == "assumed"

    def input_frames(self) -> np.ndarray:
        """(F,) int64: the input's frame number of each output frame."""
        if self.frame_ids is None:
            return np.arange(len(self.pose_3d), dtype=np.int64)
        return np.asarray(self.frame_ids, dtype=np.int64)

    @property
    def first_frame(self) -> int:
        """The input's frame number of output frame 0."""
        return int(self.input_frames()[0]) if len(self.pose_3d) else 0

    def save(self, path: str | Path, ground_truth: np.ndarray | None = None) -> Path:
        """Write the npz read by ``posediffusion render`` (atomic)."""
        arrays: dict[str, Any] = {
            "pose_3d": self.pose_3d, "uncertainty": self.uncertainty, "keypoints_2d": self.keypoints_2d,
            "image_size": np.asarray(self.image_size, dtype=np.int64), "fps": np.float32(self.fps),
            "fps_assumed": np.bool_(self.fps_assumed), "fps_source": np.asarray(self.fps_source),
            "frame_ids": self.input_frames(), "first_frame": np.int64(self.first_frame),
            "settings": np.asarray(_json(self.settings)), "scale_factor": np.float64(self.scale_factor),
            "scale_method": np.asarray(self.scale_method),
            "height": np.float64(np.nan if self.height is None else self.height),
        }
        if self.hypotheses is not None:
            arrays["hypotheses"] = self.hypotheses
        if self.filled is not None:
            arrays["filled"] = self.filled
        if self.inferred is not None:
            arrays["inferred"] = self.inferred
        if ground_truth is not None:
            arrays["ground_truth"] = np.asarray(ground_truth, dtype=np.float32)
        save_npz_atomic(path, **arrays)
        return Path(path)

    def save_json(self, path: str | Path) -> Path:
        """Write pose, uncertainty, scale and settings as JSON (frames x joints x xyz, metres)."""
        payload = {"units": "metres", "joint_order": "h36m17", "fps": self.fps,
                   "fps_assumed": self.fps_assumed, "fps_source": self.fps_source,
                   "first_frame": self.first_frame, "frame_ids": self.input_frames().tolist(),
                   "scale_factor": self.scale_factor, "scale_method": self.scale_method,
                   "height": self.height,
                   "settings": self.settings, "pose_3d": np.round(self.pose_3d, 5).tolist(),
                   "uncertainty": _nan_to_none(np.round(self.uncertainty, 5))}
        if self.inferred is not None:  # (F, 17) 1 = never seen: inferred (see inferred_by), not measured
            payload["inferred"] = self.inferred.astype(int).tolist()
        write_text_atomic(path, _json(payload))
        return Path(path)

    def save_csv(self, path: str | Path) -> Path:
        """Write a long CSV: ``frame,input_frame,joint,x,y,z,uncertainty,fps,fps_assumed,inferred``
        (metres; the input's frame number of each frame; the fps used, 1 in ``fps_assumed`` when it is an
        assumption; 1 in ``inferred`` for a joint never seen in the input, inferred by the model or from the
        body prior as ``settings["inferred_by"]`` says); then ``scale,scale_method,height``, the same on
        every row: :attr:`scale_factor`, :attr:`scale_method` and the ``--height`` in metres (empty when
        none)."""
        lines = ["frame,input_frame,joint,x,y,z,uncertainty,fps,fps_assumed,inferred,"
                 "scale,scale_method,height"]
        ids, rate = self.input_frames(), f"{self.fps:g},{int(self.fps_assumed)}"
        height = "" if self.height is None else f"{self.height:g}"
        scale = f"{self.scale_factor:.6g},{self.scale_method},{height}"
        inferred = self.inferred if self.inferred is not None else np.zeros(self.pose_3d.shape[:2], bool)
        for f in range(len(self.pose_3d)):
            for j, name in enumerate(H36M_17.joints):
                (x, y, z), u = self.pose_3d[f, j], self.uncertainty[f, j]
                flag = int(inferred[f, j])
                u_text = f"{u:.5f}" if np.isfinite(u) else ""
                lines.append(f"{f},{ids[f]},{name},{x:.5f},{y:.5f},{z:.5f},{u_text},{rate},{flag},{scale}")
        write_text_atomic(path, "\n".join(lines) + "\n")
        return Path(path)


def _nan_to_none(values: np.ndarray) -> list:
    """Nested lists of ``values`` with NaN as ``None`` (JSON null: strict JSON has no NaN)."""
    out = values.astype(object)
    out[np.isnan(values)] = None
    return out.tolist()


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
    hypotheses: int = FAST_SAMPLING["hypotheses"],
    steps: int = FAST_SAMPLING["steps"],
    flip: bool = FAST_SAMPLING["flip"],
    aggregation: str = "p-agg",
    stride: int | None = None,
    batch_windows: int = 8,
    keep_hypotheses: bool = False,
    seed: int = 0,
    progress: bool = False,
    visible: np.ndarray | None = None,
) -> LiftResult:
    """Lift an (F, 17, 2) pixel track of any length F >= 2 to 3D.

    Returns the network's own output, unscaled (``scale_method`` ``"none"``); :func:`rescale` gives it
    metric size, as :func:`lift_file` and ``posediffusion lift`` do by default.

    Args:
        keypoints: (F, 17, 2) pixels, Human3.6M joint order, NaN-free.
        image_size: (width, height) of the video, pixels.
        model: a :class:`posediffusion.PoseDiffusion` (eval mode; its device is used).
        hypotheses: H >= 1 samples per window (default: :data:`FAST_SAMPLING`, as ``lift``'s; H = 1 gives
            no uncertainty).
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
        visible: (F, 17) bool, False for joints missing from the input (their pixels are placeholders,
            never read): the model infers them. Only for a model with a missing-joint input
            (``config.model.joint_mask``; else ``ValueError``). ``None``: every joint is taken as seen.
    """
    aggregation = canonical_aggregation(aggregation)
    pixels = np.asarray(keypoints, dtype=np.float32)
    frames = model.config.model.frames
    image_size = check_image_size(image_size, "image_size")
    _check_track(pixels, image_size, frames)
    masks = None if visible is None else [_check_visible(visible, pixels, model)]
    stride = max(frames // 2, 1) if stride is None else stride
    normalised = normalize_screen(pixels, *image_size).astype(np.float32)  # (F, 17, 2)
    [(_, merged)] = list(sample_sequences(
        model, [normalised], hypotheses=hypotheses, steps=steps, flip=flip,
        generator=torch.Generator().manual_seed(seed), stride=stride, batch_size=batch_windows,
        weights="hann", values=partial(_window_values, keep_hypotheses=keep_hypotheses), progress=progress,
        visible=masks))
    # merging keeps the root at 0; root_relative guards against rounding
    poses = {name: root_relative(merged.result(name).astype(np.float32)) for name in AGGREGATIONS}
    labels = {name: estimate_label(name, ROOT_SOURCE) for name in AGGREGATIONS}
    hyps = merged.result("hypotheses").astype(np.float32).transpose(1, 0, 2, 3) if keep_hypotheses else None
    spread = merged.result("spread").astype(np.float32)  # (F, 17)
    return LiftResult(
        pose_3d=poses[aggregation],
        # one hypothesis has no spread: NaN says "not measured", where 0 would claim certainty
        uncertainty=spread if hypotheses > 1 else np.full_like(spread, np.nan),
        keypoints_2d=pixels,
        image_size=image_size,
        hypotheses=hyps,
        alternatives={labels[name]: pose for name, pose in poses.items()},
        settings={"hypotheses": hypotheses, "steps": steps, "flip": flip, "seed": seed, "stride": stride,
                  "aggregation": labels[aggregation], "frames_per_window": frames,
                  "windows": len(window_starts(len(pixels), frames, stride)),
                  **({} if masks is None else {"missing_joints_to_model": int((~masks[0]).sum())})},
    )


def _check_visible(visible: np.ndarray, pixels: np.ndarray, model: torch.nn.Module) -> np.ndarray:
    """The (F, 17) bool visibility of a track, checked against the pixels and the model."""
    if not getattr(model.config.model, "joint_mask", False):
        raise ValueError("visible needs a model with a missing-joint input (ModelConfig.joint_mask); this "
                         "one takes every joint as seen: fill or place missing joints instead")
    visible = np.asarray(visible)
    if visible.shape != pixels.shape[:-1] or visible.dtype != np.bool_:
        raise ValueError(f"visible must be a {pixels.shape[:-1]} bool array like the keypoints' (F, 17), "
                         f"got {visible.dtype} {visible.shape}")
    return visible


def _window_values(hyps: torch.Tensor, x2d: torch.Tensor, keep_hypotheses: bool,
                   visible: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """What lift merges from a batch: hyps (n, H, T, 17, 3), x2d (n, T, 17, 2) -> {name: (n, T, ...)}.

    Both aggregations, the hypothesis spread and optionally every hypothesis, as float64 numpy: only the
    per-batch values live on the model's device, the clip-long sums stay on the CPU. Where ``visible``
    (n, T, 17) bool is False the joint has no keypoint to reproject to, so J-Agg takes P-Agg's value.
    """
    values = {
        "j-agg": joint_aggregate(hyps, x2d, camera=None, root_source=ROOT_SOURCE),  # (n, T, 17, 3)
        "p-agg": pose_aggregate(hyps),  # (n, T, 17, 3)
        "spread": hypothesis_spread(hyps),  # (n, T, 17)
    }
    if visible is not None:
        values["j-agg"] = torch.where(visible[..., None], values["j-agg"], values["p-agg"])
    if keep_hypotheses:
        values["hypotheses"] = hyps.permute(0, 2, 1, 3, 4)  # (n, T, H, 17, 3)
    return {name: value.detach().cpu().double().numpy() for name, value in values.items()}


def lift_file(
    path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    format: str = "auto",
    image_size: tuple[int, int] | None = None,
    min_confidence: float | None = None,
    person: int | None = None,
    device: str = "cpu",
    fps: float | None = None,
    **options: Any,
) -> LiftResult:
    """Read a keypoint file (any supported format), lift it, and return the result.

    ``checkpoint=None`` uses the bundled CPU model. ``options`` go to :func:`lift_keypoints`. The device and
    ``fps`` are checked before the file is read. ``fps`` (``--fps``) overrides the file's frame rate;
    without either, ``DEFAULT_FPS`` is assumed and the result says so (``fps_source == "assumed"``).
    ``min_confidence=None`` uses the tool's own threshold where it has one (Detectron2: 0.05), else 0.3.
    ``person`` is a track id (``data/tracking.py``); ``None`` lifts the track seen in most frames.
    """
    resolve_device(device)
    if fps is not None:
        fps = check_fps(fps, "--fps")
    track = load_keypoints(path, format=format, image_size=image_size, min_confidence=min_confidence,
                           person=person)
    model, source = load_lifter(checkpoint, device=device)
    return lift_track(path, track, model, source, fps, options)


def lift_all_people(
    path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    format: str = "auto",
    image_size: tuple[int, int] | None = None,
    min_confidence: float | None = None,
    min_frames: int | None = None,
    device: str = "cpu",
    fps: float | None = None,
    **options: Any,
) -> dict[int, LiftResult]:
    """Lift every person's track of a keypoint file: track id -> result (``--all-people``).

    Arguments as :func:`lift_file`; tracks seen in fewer than ``min_frames`` frames are skipped
    (``data.keypoints.load_tracks``). Every result covers the whole clip (frames without the person are
    ``filled``) and records its ``track_id`` in ``settings``.
    """
    resolve_device(device)
    if fps is not None:
        fps = check_fps(fps, "--fps")
    tracks = load_tracks(path, format=format, image_size=image_size, min_confidence=min_confidence,
                         min_frames=min_frames)
    model, source = load_lifter(checkpoint, device=device)
    return {track.track_id: lift_track(path, track, model, source, fps, options) for track in tracks}


def lift_track(path: str | Path, track: Keypoints, model: torch.nn.Module, source: str, fps: float | None,
               options: dict[str, Any]) -> LiftResult:
    """Lift one loaded track (``options`` go to :func:`lift_keypoints`); copy its masks, frame numbers, fps
    (``fps`` given: "--fps"; else the track's: "file"; else assumed) and provenance into the result.

    A model with a missing-joint input (``config.model.joint_mask``) gets ``visible = ~track.filled``: it
    infers every joint the track lacks (gaps and never-seen joints) instead of trusting the filled or
    body-prior placeholders; ``settings["inferred_by"]`` is then ``"model"``, else ``"body prior"``.
    ``options["never_seen"]`` (``"model"`` | ``"prior"``; ``None``: :data:`DEFAULT_NEVER_SEEN` for such a
    model, ``"prior"`` for others) decides for never-seen joints: with ``"prior"`` their body-prior
    placement is passed as seen (gaps still go to the model as missing); ``"model"`` needs the input.

    ``options["scale"]`` (default ``"prior"``) and ``options["height"]`` (metres) are not lift options:
    they go to :func:`rescale`, so lift and video output metric-size skeletons by default."""
    options = dict(options)
    scale_method, height = options.pop("scale", "prior"), options.pop("height", None)
    check_scale_options(scale_method, height)  # before the (slow) lifting
    has_input = bool(getattr(model.config.model, "joint_mask", False))
    never_seen = check_never_seen(options.pop("never_seen", None), has_input)
    by_model = never_seen == "model"
    visible = ~np.asarray(track.filled, bool) if has_input else None
    if has_input and not by_model and track.inferred is not None:
        visible |= np.asarray(track.inferred, bool)  # body-prior placements lifted as if seen
    result = lift_keypoints(track.pixels, track.image_size, model, visible=visible, **options)
    result.filled = track.filled
    result.inferred = track.inferred if track.inferred is not None else np.zeros(track.filled.shape, bool)
    result.frame_ids = track.frame_ids
    if fps is not None:
        if track.fps is not None and track.fps != fps:
            log.warning("%s: --fps %g overrides the file's %g fps", path, fps, track.fps)
        result.fps, result.fps_source = fps, "--fps"
    elif track.fps is not None:
        result.fps, result.fps_source = track.fps, "file"
    else:
        result.fps, result.fps_source = DEFAULT_FPS, "assumed"
    result.settings.update({"checkpoint": source, "input": str(path), "format": track.source_format,
                            "filled_joints": int(track.filled.sum()),
                            "far_outside_joints": track.far_outside, "min_confidence": track.min_confidence,
                            "track_id": track.track_id, "tracks": track.tracks,
                            "inferred_joints": [H36M_17.joints[j]
                                                for j in np.flatnonzero(result.inferred.any(axis=0))],
                            "inferred_by": "model" if by_model else "body prior"})
    return rescale(result, scale_method, height)


def check_never_seen(method: str | None, has_input: bool) -> str:
    """The never-seen-joint method to use: ``method`` checked, or the default for the model (see
    :func:`lift_track`); ``ValueError`` for an unknown one or ``"model"`` without the missing-joint input."""
    if method is None:
        return DEFAULT_NEVER_SEEN if has_input else "prior"
    if method not in NEVER_SEEN_METHODS:
        raise ValueError(f"--never-seen {method}: expected one of {', '.join(NEVER_SEEN_METHODS)}")
    if method == "model" and not has_input:
        raise ValueError("--never-seen model needs a model with a missing-joint input (trained with --model "
                         "joint_mask=true --joint-dropout P); this one has none: use --never-seen prior")
    return method


def rescale(result: LiftResult, method: str = "prior", height: float | None = None) -> LiftResult:
    """Give a lift metric size (``--scale``, ``--height``): multiply it by the factor of
    :func:`posediffusion.scale.estimate_scale`, in place, and record it; returns ``result``.

    The factor is measured on ``result.pose_3d`` ignoring ``result.inferred`` joints (all of them, with a
    warning, if nothing else is left). It multiplies the pose, every alternative aggregation, the
    hypotheses and the uncertainty alike. A weak- or full-perspective root would move ``s`` times further
    from the camera with them, leaving the 2D projection unchanged; lift estimates no root (poses are
    root-relative). ``result.scale_factor``, ``scale_method``, ``height`` and ``settings["scale"]``
    (adding the standing heights of the network's output and of the result, metres) record it. Only the
    network's raw output (``scale_method == "none"``, as :func:`lift_keypoints` returns it) can be
    rescaled. ``posediffusion evaluate`` and ``eval-3dhp`` never rescale: they score the raw output.
    """
    check_scale_options(method, height)
    if result.scale_method != "none":
        raise ValueError(f"this lift is already rescaled (--scale {result.scale_method}); rescale the raw "
                         "output (--scale none) instead")
    inferred = result.inferred if result.inferred is not None and result.inferred.any() else None
    try:
        factor = estimate_scale(result.pose_3d, method, height, inferred)
    except ValueError:
        if inferred is None:
            raise
        log.warning("--scale %s: every segment it measures touches a joint never seen; measuring the "
                    "inferred joints too", method)
        inferred = None
        factor = estimate_scale(result.pose_3d, method, height)
    raw_height = standing_height(result.pose_3d, inferred)
    result.pose_3d = (result.pose_3d * factor).astype(np.float32)
    result.uncertainty = (result.uncertainty * factor).astype(np.float32)
    result.alternatives = {k: (v * factor).astype(np.float32) for k, v in result.alternatives.items()}
    if result.hypotheses is not None:
        result.hypotheses = (result.hypotheses * factor).astype(np.float32)
    result.scale_factor, result.scale_method, result.height = float(factor), method, height
    result.settings["scale"] = {
        "method": method, "factor": float(factor), "height_m": height,
        "network_standing_height_m": round(raw_height, 4),
        "standing_height_m": round(standing_height(result.pose_3d, inferred), 4)}
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
    The scores and the npz are the network's raw output, unscaled: ``lift``'s default ``--scale prior``
    resizes every body to the reference skeleton, which moves MPJPE (not P-MPJPE, which aligns the scale)
    for a subject of another size, so that row is extra and labelled as such.
    """
    out_dir = check_output_folder(out_dir, flag="--out")
    sample = np.load(bundled_sample())
    gt = sample["ground_truth"]
    image_size = (int(sample["image_size"][0]), int(sample["image_size"][1]))
    model, source = load_lifter(checkpoint, device=device)
    result = lift_keypoints(sample["keypoints"], image_size, model, hypotheses=hypotheses, steps=steps,
                            flip=True, seed=0)  # the setting the demo prints, not lift's default
    metrics = {f"{label}, H={hypotheses}": {"mpjpe": 1000 * mpjpe(pose, gt),
                                            "p_mpjpe": 1000 * p_mpjpe(pose, gt)}
               for label, pose in result.alternatives.items()}
    prior = rescale(replace(result, settings=dict(result.settings)), "prior")
    metrics[f"{prior.settings['aggregation']}, H={hypotheses}, --scale prior (x{prior.scale_factor:.2f})"] = {
        "mpjpe": 1000 * mpjpe(prior.pose_3d, gt), "p_mpjpe": 1000 * p_mpjpe(prior.pose_3d, gt)}
    result.fps, result.fps_source = float(sample["fps"]), "file"
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
