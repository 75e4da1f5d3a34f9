"""CMU mocap (H36M-17 joints, mm, world Z up) -> a synthetic multi-camera dataset in the Human3.6M layout.

Each motion becomes one "action" of one pseudo-subject (S1, S5, S6, S7, S8 train; S9, S11 test) and is
placed in front of that Human3.6M subject's 4 cameras, projected with the exact distortion model, and given
a detector-like noisy 2D variant. See ``docs/mocap.md`` for the placement, split and noise model.

Shapes: F frames, J = 17 joints (Human3.6M order). 3D in metres (mm only in the input file), 2D in pixels.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion import camera as cam
from posediffusion.data.units import THIGH_MM, UNITS_MM
from posediffusion.io_utils import atomic_path, read_npz
from posediffusion.skeleton import H36M_17, median_thigh

logger = logging.getLogger(__name__)

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
TEST_FRACTION = 0.2
CREDIT = ("The data used in this project was obtained from mocap.cs.cmu.edu. "
          "The database was created with funding from NSF EIA-0196217.")
MIN_DEPTH_M = 0.3  # every joint at least this far in front of every camera (hard constraint of the placement)
#: (keyword in the description, kind); first match wins, otherwise the description's first clause.
KIND_KEYWORDS = (("salsa", "salsa dance"), ("walk", "walk"), ("dance", "dance"), ("charleston", "dance"))
#: separate random streams derived from (seed, motion name)
_STREAM_SPLIT, _STREAM_PLACE, _STREAM_NOISE = 1, 2, 3
#: (left, right) joint lists that a left/right swap outlier exchanges: arms, legs
_LIMB_PAIRS = (([11, 12, 13], [14, 15, 16]), ([4, 5, 6], [1, 2, 3]))
#: Input units of a motion archive and their size in millimetres (the metric ones of ``units.UNITS_MM``).
UNITS = {unit: UNITS_MM[unit] for unit in ("mm", "m")}


# ----------------------------------------------------------------------------------------------- input
def load_mocap(path: str | Path, motions: list[str] | None = None,
               unit: str = "mm") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read and validate the mocap npz (and its optional ``.json`` sidecar).

    Args:
        path: npz of motion name -> (F, 17, 3) positions, world frame, Z up, in ``unit``.
        motions: optional subset of motion names (kept in the given order).
        unit: ``"mm"`` (default) or ``"m"``, the unit of the file. It is checked against the bone lengths:
            a motion whose median thigh (hip-knee) is not 100-1000 mm in that unit is an error that says
            which unit the numbers look like.

    Returns:
        (positions, descriptions): motion -> (F, 17, 3) float64 millimetres; motion -> description (the
        sidecar's ``description``, or the motion name when there is no sidecar entry).
    """
    path = Path(path)
    if unit not in UNITS:
        raise ValueError(f"--unit {unit!r}: must be one of {sorted(UNITS)}")
    raw = read_npz(path, what="mocap", hint="as a .npz of (F, 17, 3) arrays")
    if not raw:
        raise ValueError(f"{path}: contains no motions")
    if motions is not None:
        unknown = [m for m in motions if m not in raw]
        if unknown or not motions:
            raise ValueError(f"{path}: unknown motion name(s) {unknown or '(empty list)'}; "
                             f"available e.g. {sorted(raw)[:5]}")
        raw = {m: raw[m] for m in motions}
    positions = {name: _check_motion(path, name, arr) * UNITS[unit] for name, arr in raw.items()}
    for name, motion in positions.items():
        _check_unit(path, name, motion, unit)
    return positions, _read_descriptions(path.with_suffix(".json"), positions)


def _check_unit(path: Path, name: str, positions_mm: np.ndarray, unit: str) -> None:
    """``ValueError`` unless the median thigh of (F, 17, 3) mm is a person's (``THIGH_MM``)."""
    thigh = median_thigh(positions_mm)
    low, high = THIGH_MM
    if low <= thigh <= high:
        return
    read_as = f"{thigh / UNITS[unit]:.4g} {unit}"
    guess = next((u for u, f in UNITS.items() if low <= thigh / UNITS[unit] * f <= high), None)
    advice = f"the numbers look like {'metres' if guess == 'm' else 'millimetres'}: pass --unit {guess}" \
        if guess else "not a person's size in mm or m"
    raise ValueError(f"{path}: motion '{name}': median thigh (hip-knee) length {read_as} with --unit {unit}; "
                     f"{advice}")


def _check_motion(path: Path, name: str, arr: np.ndarray) -> np.ndarray:
    if arr.ndim != 3 or arr.shape[1:] != (H36M_17.num_joints, 3):
        raise ValueError(f"{path}: motion '{name}' has shape {arr.shape}, expected (F, 17, 3)")
    if arr.shape[0] == 0:
        raise ValueError(f"{path}: motion '{name}' is empty (0 frames)")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise ValueError(f"{path}: motion '{name}' contains NaN/inf or non-numeric values")
    return arr.astype(np.float64)


def _read_descriptions(sidecar: Path, positions: dict[str, np.ndarray]) -> dict[str, str]:
    entries: dict[str, Any] = {}
    if sidecar.is_file():
        try:
            entries = json.loads(sidecar.read_text()).get("motions", {})
        except (OSError, json.JSONDecodeError, AttributeError) as err:
            raise ValueError(f"{sidecar}: cannot read the mocap sidecar JSON ({err})") from err
    return {name: str((entries.get(name) or {}).get("description") or name) for name in positions}


def motion_kind(description: str) -> str:
    """Coarse kind of motion used to stratify the split, e.g. "dance - glissade" -> "dance"."""
    text = description.lower().replace("_", " ")
    for keyword, kind in KIND_KEYWORDS:
        if keyword in text:
            return kind
    first = re.sub(r"[\d\s]+", " ", text.split(" - ")[0]).strip()
    return first or "other"


def rig_of(name: str) -> str:
    """Source rig from the motion-name suffix (``_asf``, ``_max``, ``_cc``, ``_sl``), or ``""``."""
    return name.rsplit("_", 1)[-1] if "_" in name else ""


def _rng(seed: int, name: str, stream: int, *extra: int) -> np.random.Generator:
    """Generator that depends only on (seed, motion name, stream): subsets reproduce the same motions."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), stream, *extra])


# ----------------------------------------------------------------------------------------------- split
def split_motions(frames: dict[str, int], kinds: dict[str, str], seed: int,
                  test_fraction: float = TEST_FRACTION, num_candidates: int = 2000) -> dict[str, str]:
    """Assign whole motions to pseudo-subjects: motion -> subject.

    Draws ``num_candidates`` random train/test splits (seeded), forces every kind with >= 2 motions onto both
    sides, and keeps the one that (1) puts every rig (name suffix) with >= 2 motions on both sides and
    (2) has the test share of frames nearest ``test_fraction``. Motions are then dealt longest first to the
    subject of their side with the fewest frames so far.
    """
    names = sorted(frames)
    if len(names) < 2:
        logger.warning("only %d motion(s): everything goes to the training subjects", len(names))
        return _deal(names, frames, TRAIN_SUBJECTS)
    rng = np.random.default_rng([seed, _STREAM_SPLIT])
    counts = np.array([frames[n] for n in names], dtype=np.float64)
    groups = [_indices(names, kinds), _indices(names, {n: rig_of(n) for n in names})]
    best, best_score = None, np.inf
    for _ in range(num_candidates):
        is_test = rng.random(len(names)) < test_fraction
        for idx in groups[0]:
            _force_both_sides(is_test, idx, rng)
        missing = sum(is_test[idx].all() or not is_test[idx].any() for idx in groups[1])
        score = missing + abs(counts[is_test].sum() / counts.sum() - test_fraction)
        if score < best_score:
            best, best_score = is_test.copy(), score
    test = [n for n, t in zip(names, best, strict=True) if t]
    train = [n for n, t in zip(names, best, strict=True) if not t]
    return {**_deal(train, frames, TRAIN_SUBJECTS), **_deal(test, frames, TEST_SUBJECTS)}


def _indices(names: list[str], labels: dict[str, str]) -> list[np.ndarray]:
    """Index arrays of the label groups that have at least two motions."""
    by_label: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_label.setdefault(labels[n], []).append(i)
    return [np.array(v) for v in by_label.values() if len(v) >= 2]


def _force_both_sides(is_test: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> None:
    if not is_test[idx].any():
        is_test[rng.choice(idx)] = True
    elif is_test[idx].all():
        is_test[rng.choice(idx)] = False


def _deal(names: list[str], frames: dict[str, int], subjects: tuple[str, ...]) -> dict[str, str]:
    load = dict.fromkeys(subjects, 0)
    out = {}
    for n in sorted(names, key=lambda m: (-frames[m], m)):
        subject = min(subjects, key=lambda s: (load[s], subjects.index(s)))
        out[n] = subject
        load[subject] += frames[n]
    return out


# ----------------------------------------------------------------------------------------------- placement
@dataclass(frozen=True)
class Placement:
    """Rigid placement of one motion: ``world = Rz(yaw) @ p + [translation_xy, 0]`` (metres, radians)."""

    yaw: float
    translation_xy: tuple[float, float]
    frames_in_view: int
    frames: int

    def apply(self, positions_m: np.ndarray) -> np.ndarray:
        """(F, J, 3) metres -> (F, J, 3) placed in the world frame; z (feet on the floor) unchanged."""
        return _rotate_z(positions_m, np.array([self.yaw]))[0] + np.array([*self.translation_xy, 0.0])


def _rotate_z(points: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """(..., 3) points, (C,) yaws -> (C, ..., 3) points rotated about the world Z axis."""
    c, s = np.cos(yaws), np.sin(yaws)
    rot = np.zeros((len(yaws), 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    return np.einsum("cij,...j->c...i", rot, points)


def capture_centre(cameras: list[dict[str, Any]]) -> np.ndarray:
    """(2,) world XY of the point nearest (least squares) to all cameras' optical axes, metres."""
    normal_eq, rhs = np.zeros((3, 3)), np.zeros(3)
    for c in cameras:
        axis = c["R"][:, 2]  # camera Z axis in world coordinates (X_world = R X_cam + T)
        proj = np.eye(3) - np.outer(axis, axis)
        normal_eq += proj
        rhs += proj @ c["T"]
    return np.linalg.solve(normal_eq, rhs)[:2]


def frames_in_view(world: np.ndarray, cameras: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame visibility of (..., F, J, 3) world points in every camera.

    Returns:
        (in_front, in_view): (..., F) bool; every joint at least ``MIN_DEPTH_M`` in front of every camera /
        additionally inside every image (0 <= u < res_w, 0 <= v < res_h).
    """
    in_front = np.ones(world.shape[:-2], dtype=bool)
    in_view = in_front.copy()
    for c in cameras:
        pts = cam.world_to_camera(world, c["R"], c["T"])
        front = (pts[..., 2] > MIN_DEPTH_M).all(-1)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            uv = cam.project_to_pixels(pts, c)
        inside = ((uv[..., 0] >= 0) & (uv[..., 0] < c["res_w"]) & (uv[..., 1] >= 0)
                  & (uv[..., 1] < c["res_h"])).all(-1)
        in_front &= front
        in_view &= front & inside
    return in_front, in_view


def place_motion(positions_m: np.ndarray, cameras: list[dict[str, Any]], rng: np.random.Generator,
                 num_yaws: int = 24, num_offsets: int = 9, max_offset_m: float = 1.0,
                 max_search_frames: int = 150) -> Placement:
    """Choose a yaw and XY translation that keep (F, J, 3) metres in view of all ``cameras``.

    Candidates: ``num_yaws`` yaws evenly spaced from a random start, times the centred position (root
    trajectory's bounding-box centre on :func:`capture_centre`) plus ``num_offsets - 1`` random offsets within
    ``max_offset_m``. Best = all joints in front in every frame, then most frames fully in view, then the
    smallest offset, then the (random) yaw order. The search scores at most ``max_search_frames`` frames.
    """
    yaws = rng.uniform(0, 2 * np.pi) + np.arange(num_yaws) * 2 * np.pi / num_yaws
    rng.shuffle(yaws)
    offsets = np.concatenate([np.zeros((1, 2)),
                              rng.uniform(-max_offset_m, max_offset_m, (num_offsets - 1, 2))])
    step = max(1, int(np.ceil(len(positions_m) / max_search_frames)))
    rotated = _rotate_z(positions_m[::step], yaws)  # (Y, S, J, 3)
    root_xy = rotated[:, :, 0, :2]
    centred = capture_centre(cameras) - (root_xy.min(1) + root_xy.max(1)) / 2  # (Y, 2)
    shifts = centred[None] + offsets[:, None]  # (O, Y, 2)
    world = rotated[None] + np.concatenate([shifts, np.zeros((*shifts.shape[:2], 1))], -1)[:, :, None, None]
    in_front, in_view = frames_in_view(world, cameras)  # (O, Y, S)
    score = in_front.all(-1) * (len(positions_m) + 1) + in_view.sum(-1)
    o, y = np.unravel_index(np.argmax(score), score.shape)  # first maximum: smallest offset, then yaw order
    shift = (float(shifts[o, y, 0]), float(shifts[o, y, 1]))
    placement = Placement(float(yaws[y] % (2 * np.pi)), shift, 0, len(positions_m))
    front_full, view_full = frames_in_view(placement.apply(positions_m), cameras)
    if not front_full.all():
        raise ValueError(f"no placement keeps every joint {MIN_DEPTH_M} m in front of all cameras "
                         f"({int((~front_full).sum())} frames fail)")
    return Placement(placement.yaw, placement.translation_xy, int(view_full.sum()), len(positions_m))


def project_to_cameras(world: np.ndarray, cameras: list[dict[str, Any]]) -> list[np.ndarray]:
    """(F, J, 3) world metres -> one (F, J, 2) float32 pixel array per camera (exact distortion model)."""
    world = world.astype(np.float64)
    return [cam.project_to_pixels(cam.world_to_camera(world, c["R"], c["T"]), c).astype(np.float32)
            for c in cameras]


# ----------------------------------------------------------------------------------------------- noise
def _default_groups() -> dict[str, tuple[tuple[int, ...], float]]:
    return {  # group -> (H36M joint indices, white-noise sigma in px)
        "torso": ((0, 7, 8), 1.5), "head": ((9, 10), 2.0), "shoulders": ((11, 14), 2.0),
        "hips": ((1, 4), 2.5), "knees": ((2, 5), 2.5), "elbows": ((12, 15), 3.0),
        "ankles": ((3, 6), 3.5), "wrists": ((13, 16), 4.0),
    }


@dataclass(frozen=True)
class DetectorNoise:
    """Detector-like corruption of ground-truth 2D keypoints (pixels), applied per camera.

    Per joint: white Gaussian noise (sigma by joint group) plus temporally correlated jitter, an AR(1)
    process per coordinate with per-frame correlation ``jitter_correlation`` and stationary sigma
    ``jitter_ratio`` x the group sigma. Outlier events start in a frame with probability
    ``outlier_rate`` and last ``outlier_frames`` (inclusive range) frames; an event either swaps the left
    and right arm or leg (probability ``swap_probability``) or displaces one joint of
    ``outlier_joints`` by a constant vector of length ``outlier_px`` (uniform range) in a random direction.
    """

    groups: dict[str, tuple[tuple[int, ...], float]] = field(default_factory=_default_groups)
    jitter_ratio: float = 1.0
    jitter_correlation: float = 0.9
    outlier_rate: float = 0.005
    outlier_frames: tuple[int, int] = (1, 6)
    outlier_px: tuple[float, float] = (20.0, 60.0)
    swap_probability: float = 0.3
    outlier_joints: tuple[int, ...] = (2, 3, 5, 6, 10, 12, 13, 15, 16)

    def sigma_per_joint(self) -> np.ndarray:
        """(J,) white-noise sigma in px."""
        sigma = np.zeros(H36M_17.num_joints)
        for joints, s in self.groups.values():
            sigma[list(joints)] = s
        return sigma

    def apply(self, keypoints: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(F, J, 2) px -> (noisy (F, J, 2) float32 px, outliers (F, J) bool)."""
        from scipy.signal import lfilter

        n, j = keypoints.shape[:2]
        sigma = self.sigma_per_joint()[None, :, None]  # (1, J, 1)
        rho, jitter_sigma = self.jitter_correlation, self.jitter_ratio * sigma
        # AR(1): a_t = rho a_{t-1} + sqrt(1 - rho^2) s e_t, started from the stationary distribution
        start = rho * jitter_sigma * rng.standard_normal((1, j, 2))
        innovations = np.sqrt(1 - rho**2) * jitter_sigma * rng.standard_normal((n, j, 2))
        jitter = lfilter([1.0], [1.0, -rho], innovations, axis=0, zi=start)[0]
        noisy = keypoints + sigma * rng.standard_normal((n, j, 2)) + jitter
        outliers = np.zeros((n, j), dtype=bool)
        for first in np.flatnonzero(rng.random(n) < self.outlier_rate):
            frames = slice(first, first + rng.integers(self.outlier_frames[0], self.outlier_frames[1] + 1))
            self._outlier_event(noisy, outliers, frames, rng)
        return noisy.astype(np.float32), outliers

    def _outlier_event(self, noisy: np.ndarray, outliers: np.ndarray, frames: slice,
                       rng: np.random.Generator) -> None:
        if rng.random() < self.swap_probability:
            left, right = _LIMB_PAIRS[rng.integers(len(_LIMB_PAIRS))]
            noisy[frames, left + right] = noisy[frames, right + left]
            outliers[frames, left + right] = True
        else:
            joint = rng.choice(self.outlier_joints)
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(*self.outlier_px)
            noisy[frames, joint] += length * np.array([np.cos(angle), np.sin(angle)])
            outliers[frames, joint] = True

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description of the model (stored in the det file's metadata)."""
        info = asdict(self)
        info["groups"] = {g: {"joints": list(j), "white_sigma_px": s,
                              "jitter_sigma_px": s * self.jitter_ratio,
                              "total_sigma_px": float(np.hypot(s, s * self.jitter_ratio))}
                          for g, (j, s) in self.groups.items()}
        return info


# ----------------------------------------------------------------------------------------------- prepare
@dataclass
class PreparedMocap:
    """Summary of a prepared dataset: output paths, motion -> subject, frames per subject."""

    paths: dict[str, Path]
    subjects: dict[str, str]
    frames_per_subject: dict[str, int]
    placements: dict[str, Placement]

    @property
    def total_frames(self) -> int:
        return sum(self.frames_per_subject.values())


def prepare_mocap(input_path: str | Path, cameras_path: str | Path, out_dir: str | Path, name: str = "cmu",
                  seed: int = 0, motions: list[str] | None = None,
                  noise: DetectorNoise | None = None, unit: str = "mm") -> PreparedMocap:
    """Build ``data_3d_<name>.npz``, ``data_2d_<name>_gt.npz``, ``data_2d_<name>_det.npz`` and
    ``split_<name>.json`` in ``out_dir`` (all written atomically, together, only if everything succeeds).

    ``unit`` is the unit of the input file (``"mm"`` or ``"m"``, checked against bone lengths, see
    :func:`load_mocap`); ``seed`` a non-negative integer below 2**64."""
    check_name_and_seed(name, seed)
    positions_mm, descriptions = load_mocap(input_path, motions, unit=unit)
    return prepare_motions(positions_mm, descriptions, cameras_path, out_dir, name=name, seed=seed,
                           noise=noise, label=str(input_path))


def check_name_and_seed(name: str, seed: int) -> None:
    """``ValueError`` unless ``name`` is a safe file-name part and ``seed`` an integer in [0, 2**64)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"dataset name '{name}' must be letters, digits, '_', '-', '.'")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"--seed {seed!r}: must be a non-negative integer below 2**64")


def prepare_motions(positions_mm: dict[str, np.ndarray], descriptions: dict[str, str],
                    cameras_path: str | Path, out_dir: str | Path, *, name: str, seed: int = 0,
                    noise: DetectorNoise | None = None, label: str = "motions", fps: float = 50,
                    test_motions: list[str] | None = None, sources: dict[str, dict[str, Any]] | None = None,
                    source: str | None = None, credit: str | None = CREDIT) -> PreparedMocap:
    """:func:`prepare_mocap` on in-memory motions (what ``prepare bvh`` uses).

    Args:
        positions_mm: motion -> (F, 17, 3) millimetres, world frame Z up, at ``fps``.
        descriptions: motion -> description (gives the kind that stratifies the split; default the name).
        label: names the input in error messages (a motion's ``sources[m]["path"]`` wins).
        fps: frame rate of the motions, recorded in the 2D files' metadata.
        test_motions: motions for the test subjects (all others train); ``None`` = the automatic split of
            :func:`split_motions`.
        sources: motion -> JSON-friendly provenance (path, licence, ...), stored in the metadata and split.
        source, credit: the metadata's ``source`` line (default: the CMU mocap one) and ``credit`` line
            (``None`` = no credit line).
    """
    check_name_and_seed(name, seed)
    noise = noise or DetectorNoise()
    where = {m: str((sources or {}).get(m, {}).get("path", label)) for m in positions_mm}
    positions_mm = {m: _check_motion(Path(where[m]), m, p) for m, p in positions_mm.items()}
    if not positions_mm:
        raise ValueError(f"{label}: no motions")
    cameras_path = Path(cameras_path)
    if not cameras_path.is_file():
        raise FileNotFoundError(f"{cameras_path}: camera JSON not found")
    all_cameras = cam.load_cameras(cameras_path)
    camera_ids = _camera_ids(cameras_path)
    descriptions = {m: descriptions.get(m, m) for m in positions_mm}
    kinds = {m: motion_kind(d) for m, d in descriptions.items()}
    frame_counts = {m: len(p) for m, p in positions_mm.items()}
    subjects = (split_motions(frame_counts, kinds, seed) if test_motions is None
                else _fixed_split(frame_counts, test_motions, label))
    pos3d: dict[str, dict[str, np.ndarray]] = {}
    pos2d: dict[str, dict[str, list[np.ndarray]]] = {}
    det2d: dict[str, dict[str, list[np.ndarray]]] = {}
    outliers: dict[str, dict[str, list[np.ndarray]]] = {}
    placements: dict[str, Placement] = {}
    for motion, subject in sorted(subjects.items()):
        cams = _subject_cameras(all_cameras, subject, camera_ids, cameras_path)
        try:
            placement = place_motion(positions_mm[motion] / 1000.0, cams, _rng(seed, motion, _STREAM_PLACE))
        except ValueError as err:
            raise ValueError(f"{where[motion]}: motion '{motion}': {err}") from err
        placements[motion] = placement
        world = placement.apply(positions_mm[motion] / 1000.0).astype(np.float32)
        gt = project_to_cameras(world, cams)  # projected from the stored float32 positions
        noisy = [noise.apply(kp, _rng(seed, motion, _STREAM_NOISE, k)) for k, kp in enumerate(gt)]
        pos3d.setdefault(subject, {})[motion] = world
        pos2d.setdefault(subject, {})[motion] = gt
        det2d.setdefault(subject, {})[motion] = [kp for kp, _ in noisy]
        outliers.setdefault(subject, {})[motion] = [mask for _, mask in noisy]
        _log_view(motion, subject, placement)
    meta = _metadata(name, seed, camera_ids, fps, source, credit, sources)
    det_meta = {**meta, "detector": "synthetic", "noise": noise.describe()}
    split = _split_record(name, seed, subjects, kinds, descriptions, placements, credit, sources)
    paths = _write_all(Path(out_dir), name, pos3d, (pos2d, meta), (det2d, det_meta, outliers), split)
    frames = {s: sum(len(p) for p in pos3d.get(s, {}).values()) for s in TRAIN_SUBJECTS + TEST_SUBJECTS}
    return PreparedMocap(paths, subjects, frames, placements)


def _fixed_split(frames: dict[str, int], test_motions: list[str], label: str) -> dict[str, str]:
    """``test_motions`` to the test subjects, the rest to the training subjects (each dealt by length)."""
    unknown = [m for m in test_motions if m not in frames]
    if unknown:
        raise ValueError(f"--test-motions: unknown motion name(s) {unknown}; {label} has {sorted(frames)}")
    train = [m for m in frames if m not in test_motions]
    return {**_deal(train, frames, TRAIN_SUBJECTS), **_deal(list(dict.fromkeys(test_motions)), frames,
                                                             TEST_SUBJECTS)}


def _camera_ids(path: Path) -> list[str]:
    ids = json.loads(path.read_text()).get("camera_ids")
    if not isinstance(ids, list) or len(ids) != 4:
        raise ValueError(f"{path}: 'camera_ids' must list the 4 Human3.6M camera ids")
    return [str(i) for i in ids]


def _subject_cameras(all_cameras: dict, subject: str, ids: list[str], path: Path) -> list[dict[str, Any]]:
    missing = [i for i in ids if i not in all_cameras.get(subject, {})]
    if missing:
        raise ValueError(f"{path}: subject {subject} lacks camera(s) {missing}")
    return [all_cameras[subject][i] for i in ids]


def _log_view(motion: str, subject: str, placement: Placement) -> None:
    out = placement.frames - placement.frames_in_view
    if out:
        logger.warning("%s (%s): %d of %d frames leave the image of at least one camera", motion, subject,
                       out, placement.frames)


def _metadata(name: str, seed: int, camera_ids: list[str], fps: float = 50, source: str | None = None,
              credit: str | None = CREDIT, sources: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {"num_joints": H36M_17.num_joints,
            "keypoints_symmetry": [list(H36M_17.left), list(H36M_17.right)],
            "layout_name": "h36m", "camera_ids": camera_ids, "fps": fps, "units": "pixels",
            "source": source or f"CMU mocap prepared by posediffusion prepare mocap (name={name}, "
                                f"seed={seed})"}
    if credit:
        meta["credit"] = credit
    if sources:
        meta["sources"] = dict(sorted(sources.items()))
    return meta


def _split_record(name: str, seed: int, subjects: dict[str, str], kinds: dict[str, str],
                  descriptions: dict[str, str], placements: dict[str, Placement], credit: str | None = CREDIT,
                  sources: dict[str, Any] | None = None) -> dict[str, Any]:
    frames = {m: p.frames for m, p in placements.items()}
    test_frames = sum(f for m, f in frames.items() if subjects[m] in TEST_SUBJECTS)
    return {
        "name": name, "seed": seed,
        "train_subjects": list(TRAIN_SUBJECTS), "test_subjects": list(TEST_SUBJECTS),
        "motions": dict(sorted(subjects.items())),
        "test_fraction_frames": round(test_frames / max(1, sum(frames.values())), 4),
        "kinds": dict(sorted(kinds.items())), "descriptions": dict(sorted(descriptions.items())),
        "frames": dict(sorted(frames.items())),
        "placement": {m: {"yaw_deg": round(np.degrees(p.yaw), 3), "translation_xy_m": list(p.translation_xy),
                          "frames_in_view": p.frames_in_view} for m, p in sorted(placements.items())},
        **({"sources": dict(sorted(sources.items()))} if sources else {}),
        **({"credit": credit} if credit else {}),
    }


def _write_all(out_dir: Path, name: str, pos3d: dict, gt: tuple, det: tuple, split: dict) -> dict[str, Path]:
    """Write the four files; temporary files are renamed only once all four are complete."""
    paths = {"3d": out_dir / f"data_3d_{name}.npz", "2d_gt": out_dir / f"data_2d_{name}_gt.npz",
             "2d_det": out_dir / f"data_2d_{name}_det.npz", "split": out_dir / f"split_{name}.json"}
    with contextlib.ExitStack() as stack:
        tmp = {k: stack.enter_context(atomic_path(p)) for k, p in paths.items()}
        _savez(tmp["3d"], positions_3d=pos3d)
        _savez(tmp["2d_gt"], positions_2d=gt[0], metadata=gt[1])
        _savez(tmp["2d_det"], positions_2d=det[0], metadata=det[1], outliers=det[2])
        tmp["split"].write_text(json.dumps(split, indent=1))
    return paths


def _savez(path: Path, **objects: object) -> None:
    arrays = {}
    for key, value in objects.items():
        arrays[key] = np.empty((), dtype=object)
        arrays[key][()] = value  # 0-d object array: np.load(..., allow_pickle=True)[key].item()
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
