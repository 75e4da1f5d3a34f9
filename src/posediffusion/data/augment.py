"""Camera augmentation: every training window re-projected into a virtual camera drawn for it.

Why: a dataset made by ``posediffusion prepare mocap`` shows every motion from the same 4 Human3.6M cameras
(one focal length, one image shape, a ring of ~5 m distances); a model trained on it learns those views. With
camera augmentation each training window is seen, in every epoch, from a new pinhole camera
(:class:`VirtualCameraSampler`), and the 2D input and camera-frame 3D target are recomputed from the take's
world 3D (:func:`render_window`).

Conventions: world metres with Z up (Human3.6M and ``prepare mocap``); camera frame x right, y down, z along
the optical axis; ``X_cam = R^T (X_world - T)`` (``camera.py``). Shapes: T frames, J joints, N = T * J.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence as SequenceLike
from dataclasses import dataclass

import numpy as np

from posediffusion.camera import camera_to_world, normalize_screen, project_pinhole, world_to_camera
from posediffusion.config import DataConfig
from posediffusion.data.mocap import DetectorNoise
from posediffusion.data.sequence import Sequence
from posediffusion.data.windows import WindowDataset, window_frame_indices
from posediffusion.skeleton import root_relative

logger = logging.getLogger(__name__)

#: Pixels per metre at the subject in ``prepare mocap``'s Human3.6M setting: focal ~1147 px over the ~5.1 m
#: depth of the capture centre (mean over the 4 cameras; 196-260 px/m per camera). DetectorNoise's pixel
#: sigmas were chosen for this scale, so :func:`render_window` scales them by (pixels per metre) / this.
H36M_PIXELS_PER_METRE = 225.0
#: (width, height) px of the virtual images: landscape, portrait and square, 16:9, 4:3 and 1:1.
IMAGE_SIZES = ((1920, 1080), (1080, 1920), (1280, 720), (720, 1280), (1000, 1000), (640, 480), (480, 640))
_HEAD, _ROOT = 10, 0  # Human3.6M-17 joints used to check that the world is Z up


# ----------------------------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class VirtualCamera:
    """A distortion-free pinhole camera placed in the world.

    Attributes:
        R: (3, 3) rotation whose columns are the camera's x (right), y (down) and z (optical axis) in world
            coordinates: ``X_cam = R^T (X_world - T)``.
        T: (3,) camera centre, world metres.
        focal: focal length in px (square pixels).
        center: (2,) principal point in px.
        width, height: image size in px.
        azimuth_deg, elevation_deg: direction from the subject's centre to the camera (elevation above the
            horizontal plane through the centre).
        roll_deg: rotation about the viewing direction.
        distance_m: distance from the subject's centre to the camera centre.
        fallback: the draw is :class:`VirtualCameraSampler`'s fallback (widest focal length, subject centred,
            distance possibly beyond the range).
    """

    R: np.ndarray
    T: np.ndarray
    focal: float
    center: np.ndarray
    width: int
    height: int
    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    roll_deg: float = 0.0
    distance_m: float = 0.0
    fallback: bool = False

    def to_camera_frame(self, world: np.ndarray) -> np.ndarray:
        """(..., 3) world metres -> (..., 3) camera-frame metres."""
        return world_to_camera(world, self.R, self.T)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points (Z > 0) -> (..., 2) pixels."""
        return project_pinhole(points_cam, (self.focal, self.focal), self.center)


def look_at_rotation(forward: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """(3, 3) camera rotation (columns right, down, forward) looking along ``forward`` (3,), world Z up.

    ``right = forward x Z`` keeps the image's horizon level; ``roll`` (radians) then turns the camera about
    ``forward`` (positive: the image's x axis turns towards its y axis). ``forward`` must not be vertical.
    """
    fx, fy, fz = (float(v) for v in forward)  # scalar arithmetic: this runs for every training window
    norm = math.sqrt(fx * fx + fy * fy + fz * fz)
    fx, fy, fz = fx / norm, fy / norm, fz / norm
    horizontal = math.hypot(fx, fy)
    rx, ry = fy / horizontal, -fx / horizontal  # right = forward x Z (its z is 0)
    dx, dy, dz = -fz * ry, fz * rx, fx * ry - fy * rx  # down = forward x right
    c, s = math.cos(roll), math.sin(roll)
    return np.array([[c * rx + s * dx, c * dx - s * rx, fx],
                     [c * ry + s * dy, c * dy - s * ry, fy],
                     [s * dz, c * dz, fz]])


def _rotation_onto_z(v: np.ndarray) -> np.ndarray:
    """(3, 3) rotation Q with ``Q v = (0, 0, 1)`` for a unit (3,) ``v`` with v_z > 0.

    Rodrigues' formula ``I + K + K^2 / (1 + v.z)`` with K the cross-product matrix of ``v x z = (v_y, -v_x,
    0)``, written out.
    """
    vx, vy, vz = (float(c) for c in v)
    a = 1.0 / (1.0 + vz)
    return np.array([[1.0 - a * vx * vx, -a * vx * vy, -vx],
                     [-a * vx * vy, 1.0 - a * vy * vy, -vy],
                     [vx, vy, vz]])


@dataclass(frozen=True)
class _Draw:
    """One draw of everything but the distance (angles in radians, lengths in px)."""

    width: int
    height: int
    focal: float
    center: np.ndarray  # (2,) principal point
    target: np.ndarray  # (2,) pixel where the subject's centre is to appear
    azimuth: float
    elevation: float
    roll: float

    def towards_camera(self) -> np.ndarray:
        """(3,) world unit vector from the subject's centre to the camera."""
        ce = math.cos(self.elevation)
        return np.array([ce * math.cos(self.azimuth), ce * math.sin(self.azimuth), math.sin(self.elevation)])

    def ray(self) -> np.ndarray:
        """(3,) camera-frame unit ray through the target pixel."""
        x, y = ((self.target - self.center) / self.focal).tolist()
        norm = math.sqrt(x * x + y * y + 1.0)
        return np.array([x / norm, y / norm, 1.0 / norm])

    def rotation(self) -> np.ndarray:
        """(3, 3) R that looks at the subject along ``-towards_camera`` with the centre on the target pixel.

        ``look_at_rotation`` puts the centre on the optical axis; the extra rotation ``Q`` (``Q ray = z``)
        turns the camera so that the centre is seen along ``ray``: ``R ray = look_at z = -towards_camera``.
        """
        return look_at_rotation(-self.towards_camera(), self.roll) @ _rotation_onto_z(self.ray())


# ----------------------------------------------------------------------------------------------- sampler
@dataclass(frozen=True)
class VirtualCameraSampler:
    """Draws a virtual camera that sees one window's whole body.

    Per draw (uniform unless said otherwise): an image size from ``image_sizes``; focal length
    ``focal_ratio`` x the image width; principal point at the image centre +- ``center_jitter`` x the image
    size; roll +- ``roll_deg``; camera azimuth all around the subject and elevation ``elevation_deg`` as seen
    from the subject's centre c (the root joint's mean over the window); the pixel where c appears, the
    principal point +- ``aim_jitter`` x the image size (so the subject is not always in the middle: the
    camera turns, it is not a crop). The distance d from c to the camera is then drawn uniformly from the part
    of ``distance_m`` at which every joint of every frame projects inside the image, ``margin`` x the
    shorter image side away from each border, and lies ``min_depth_m`` in front of the camera. With
    x_cam = p + d u (p a joint's offset from c in the camera frame, u the unit ray to the target pixel) each
    image border bounds d linearly, so that part is ``[d_min, distance_m[1]]`` in closed form
    (:meth:`min_distance`).

    If no distance in range fits (a long walk seen with a long lens), the whole draw is repeated, at most
    ``max_tries`` times; then the last draw falls back to the widest focal length, c on the principal point,
    and the shortest distance that fits (possibly beyond ``distance_m``; ``VirtualCamera.fallback``).
    """

    azimuth_deg: tuple[float, float] = (0.0, 360.0)
    elevation_deg: tuple[float, float] = (-10.0, 45.0)
    distance_m: tuple[float, float] = (2.0, 10.0)
    focal_ratio: tuple[float, float] = (0.6, 2.5)
    center_jitter: float = 0.05
    roll_deg: float = 10.0
    aim_jitter: float = 0.2
    image_sizes: tuple[tuple[int, int], ...] = IMAGE_SIZES
    margin: float = 0.03
    min_depth_m: float = 0.5
    max_tries: int = 8

    def __post_init__(self) -> None:
        for name in ("azimuth_deg", "elevation_deg", "distance_m", "focal_ratio"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"VirtualCameraSampler: {name} must be (low, high) with low <= high, "
                                 f"got {(low, high)}")
        if not (self.elevation_deg[0] > -90 and self.elevation_deg[1] < 90):
            raise ValueError(f"VirtualCameraSampler: elevation_deg must lie inside (-90, 90) (a vertical "
                             f"view has no horizon to roll from), got {self.elevation_deg}")
        if self.distance_m[0] <= 0 or self.focal_ratio[0] <= 0 or self.min_depth_m <= 0:
            raise ValueError("VirtualCameraSampler: distance_m, focal_ratio and min_depth_m must be positive")
        if min(self.center_jitter, self.aim_jitter, self.margin, self.roll_deg) < 0:
            raise ValueError("VirtualCameraSampler: center_jitter, aim_jitter, margin, roll_deg must be >= 0")
        if self.center_jitter + self.aim_jitter + self.margin >= 0.5:
            raise ValueError("VirtualCameraSampler: center_jitter + aim_jitter + margin must be < 0.5 so "
                             "that the subject's centre always falls inside the image's margins")
        if not self.image_sizes or any(w < 1 or h < 1 for w, h in self.image_sizes):
            raise ValueError(f"VirtualCameraSampler: image_sizes must be positive (width, height) pairs, got "
                             f"{self.image_sizes}")
        if self.max_tries < 1:
            raise ValueError(f"VirtualCameraSampler: max_tries must be >= 1, got {self.max_tries}")

    def sample(self, world: np.ndarray, rng: np.random.Generator) -> VirtualCamera:
        """A camera that sees every joint of one window in its image.

        Args:
            world: (T, J, 3) world metres, Z up, joint 0 the root.
            rng: the generator all draws come from (deterministic given its state).
        """
        centre = world[:, _ROOT].mean(axis=0)  # (3,) c
        offsets = np.ascontiguousarray((world.reshape(-1, 3) - centre).T)  # (3, N)
        for _ in range(self.max_tries):
            draw = self._draw(rng)
            rotation = draw.rotation()
            d_min = self.min_distance(offsets, draw, rotation)
            if d_min <= self.distance_m[1]:
                return self._camera(draw, rotation, centre, rng.uniform(d_min, self.distance_m[1]))
        draw = dataclasses.replace(draw, focal=self.focal_ratio[0] * draw.width, target=draw.center)
        rotation = draw.rotation()
        return self._camera(draw, rotation, centre, self.min_distance(offsets, draw, rotation), fallback=True)

    def _draw(self, rng: np.random.Generator) -> _Draw:
        u = rng.random(9)  # one call: per-call overhead dominates at this size
        width, height = self.image_sizes[min(int(u[0] * len(self.image_sizes)), len(self.image_sizes) - 1)]
        size = np.array([width, height], dtype=np.float64)
        center = size * (0.5 + self.center_jitter * (2 * u[1:3] - 1))
        return _Draw(width=width, height=height, focal=width * _between(self.focal_ratio, u[3]),
                     center=center, target=center + size * self.aim_jitter * (2 * u[4:6] - 1),
                     azimuth=math.radians(_between(self.azimuth_deg, u[6])),
                     elevation=math.radians(_between(self.elevation_deg, u[7])),
                     roll=math.radians(self.roll_deg * (2 * u[8] - 1)))

    def min_distance(self, offsets: np.ndarray, draw: _Draw, rotation: np.ndarray) -> float:
        """Shortest distance from the centre at which points at ``offsets`` (3, N) fit the image of ``draw``.

        ``offsets`` are world metres from the subject's centre, one column per point. A point at camera-frame
        offset ``p = R^T offset`` sits at ``x = p + d u`` (u the unit ray to the target pixel). In the image
        means ``lo <= f x_x / x_z <= hi`` per axis (pixel offsets from the principal point, margins
        included) and ``x_z >= min_depth_m``. Each of these five is ``w . x >= 0`` (or
        ``x_z - min_depth_m >= 0``) for a column w of ``W`` below, i.e. ``d (w . u) >= -(w . p)``;
        ``w . u > 0`` because the target pixel is inside the margins, so ``d >= -(w . p) / (w . u)`` for every
        point and column: one (5, 3) x (3, N) product per draw and a contiguous minimum per row. The result
        is at least ``distance_m[0]``.
        """
        f, m = draw.focal, self.margin * min(draw.width, draw.height)
        lo_x, lo_y = m - draw.center  # lowest allowed pixel offset from the principal point per axis
        hi_x, hi_y = draw.width - m - draw.center[0], draw.height - m - draw.center[1]
        W = np.array([[-f, f, 0.0, 0.0, 0.0],  # columns: hi_x z - f x, f x - lo_x z, hi_y z - f y,
                      [0.0, 0.0, -f, f, 0.0],  # f y - lo_y z, z (each >= 0; the last >= min_depth_m)
                      [hi_x, -lo_x, hi_y, -lo_y, 1.0]])  # (3, 5)
        lowest = ((rotation @ W).T @ offsets).min(axis=1)  # (5,) min over points of w . p
        lowest[4] -= self.min_depth_m
        return float(max(self.distance_m[0], (-lowest / (draw.ray() @ W)).max()))

    @staticmethod
    def _camera(draw: _Draw, rotation: np.ndarray, centre: np.ndarray, distance: float,
                fallback: bool = False) -> VirtualCamera:
        return VirtualCamera(R=rotation, T=centre + distance * draw.towards_camera(), focal=draw.focal,
                             center=draw.center, width=draw.width, height=draw.height,
                             azimuth_deg=math.degrees(draw.azimuth),
                             elevation_deg=math.degrees(draw.elevation),
                             roll_deg=math.degrees(draw.roll), distance_m=float(distance),
                             fallback=fallback)


def _between(bounds: tuple[float, float], u: float) -> float:
    """``u`` in [0, 1) mapped linearly onto [low, high)."""
    return bounds[0] + (bounds[1] - bounds[0]) * float(u)


# ----------------------------------------------------------------------------------------------- rendering
def render_window(world: np.ndarray, camera: VirtualCamera, noise: DetectorNoise | None = None,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Project a window's world 3D into ``camera``, optionally with detector-like 2D noise.

    The noise is ``prepare mocap``'s :class:`~posediffusion.data.mocap.DetectorNoise` made relative to the
    body: its pixel sigmas and outlier lengths are multiplied by ``k = (f / z_c) / H36M_PIXELS_PER_METRE``
    (f the focal length, z_c the root's mean depth; f / z_c = the subject's pixels per metre), so a subject
    half as large in pixels as in the Human3.6M views gets half the pixel noise. Every noise term is
    proportional to its sigma or outlier length (swaps are scale-free), hence ``k * noise.apply(px / k)``.

    Args:
        world: (T, J, 3) world metres (Human3.6M-17 joints, root 0).
        camera: the virtual camera.
        noise: the noise model, or ``None`` for noise-free 2D.
        rng: generator of the noise (required with ``noise``).

    Returns:
        x2d (T, J, 2) float32 normalised screen coordinates (``camera.normalize_screen``); x3d (T, J, 3)
        float32 camera-frame root-relative metres.
    """
    points_cam = camera.to_camera_frame(np.asarray(world, dtype=np.float64))  # (T, J, 3)
    pixels = camera.project(points_cam)  # (T, J, 2)
    if noise is not None:
        if rng is None:
            raise ValueError("render_window: noise needs an rng")
        scale = camera.focal / points_cam[:, _ROOT, 2].mean() / H36M_PIXELS_PER_METRE
        pixels = scale * noise.apply(pixels / scale, rng)[0]
    x2d = normalize_screen(pixels, camera.width, camera.height)
    return x2d.astype(np.float32), root_relative(points_cam).astype(np.float32)


# ----------------------------------------------------------------------------------------------- dataset
def world_pose(sequence: Sequence) -> np.ndarray:
    """(F, J, 3) float32 world metres of a Human3.6M-layout Sequence: ``R (pose_3d + trajectory) + T``.

    The loader keeps the camera's extrinsics (``camera["R"]``, ``camera["T"]``), so the world pose is the
    camera-frame pose rotated back (exact up to float32 rounding, ~1e-6 m).
    """
    camera = sequence.camera or {}
    if sequence.pose_3d is None or sequence.trajectory is None or "R" not in camera or "T" not in camera:
        raise ValueError(f"{sequence.name}: camera augmentation needs 3D (pose_3d and trajectory) and the "
                         "camera's extrinsics R, T to rebuild the world pose; this sequence lacks them")
    pose_cam = sequence.pose_3d.astype(np.float64) + sequence.trajectory[:, None].astype(np.float64)
    return camera_to_world(pose_cam, camera["R"], camera["T"]).astype(np.float32)


def one_view_per_take(sequences: SequenceLike[Sequence]) -> list[Sequence]:
    """The first Sequence of every (subject, action) take, in order: the other cameras' views of a take are
    the same world motion, so with virtual cameras they would only repeat it."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for seq in sequences:
        if (seq.subject, seq.action) not in seen:
            seen.add((seq.subject, seq.action))
            kept.append(seq)
    return kept


class CameraAugmentedWindows(WindowDataset):
    """:class:`WindowDataset` whose windows are re-rendered by a virtual camera per (seed, epoch, index).

    Each take is used once (:func:`one_view_per_take`): an epoch has a quarter of the windows of a 4-camera
    dataset and sees each motion once, from a new camera every epoch. The stored 2D (``gt`` or ``det``) is not
    used; the 2D comes from :func:`render_window` (with ``noise``: detector-like). The camera and the noise of
    item ``index`` depend only on ``(seed, epoch, index)`` (one generator, camera first, so switching the
    noise off keeps the cameras), like the flip decision, which still applies on top.

    Args:
        sequences: Human3.6M-layout Sequences with 3D and camera extrinsics; world frame Z up.
        frames, stride, flip, seed: as :class:`WindowDataset`.
        noise: 2D noise model, or ``None`` for noise-free 2D.
        sampler: the virtual camera distribution (default :class:`VirtualCameraSampler`).

    Raises:
        ValueError: a sequence without 3D or extrinsics, or a world frame that is not Z up.
    """

    def __init__(self, sequences: SequenceLike[Sequence], frames: int, stride: int | None = None,
                 flip: bool = False, seed: int = 0, noise: DetectorNoise | None = None,
                 sampler: VirtualCameraSampler | None = None) -> None:
        super().__init__(one_view_per_take(sequences), frames, stride=stride, flip=flip, seed=seed)
        self.world = [world_pose(seq) for seq in self.sequences]  # (F, J, 3) float32 each
        _check_z_up(self.world)
        self.noise, self.sampler = noise, sampler or VirtualCameraSampler()

    def _rng(self, index: int) -> np.random.Generator:
        """Generator of item ``index`` in this epoch (apart from the flip's ``(seed, epoch, index)``)."""
        return np.random.default_rng([self.seed, self.epoch, index, 1])

    def camera(self, index: int) -> VirtualCamera:
        """The virtual camera of item ``index`` in the current epoch."""
        seq_index, start = self.windows[index]
        indices = window_frame_indices([start], self.frames, len(self.world[seq_index]))[0][0]  # (T,)
        return self.sampler.sample(self.world[seq_index][indices].astype(np.float64), self._rng(index))

    def window_poses(self, index: int, seq_index: int, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x2d (T, J, 2) and x3d (T, J, 3) float32 of item ``index`` seen by its virtual camera."""
        world = self.world[seq_index][indices].astype(np.float64)  # (T, J, 3)
        rng = self._rng(index)  # the camera draws come first, so the noise switch leaves the camera alone
        return render_window(world, self.sampler.sample(world, rng), self.noise, rng)


def _check_z_up(worlds: list[np.ndarray]) -> None:
    """``ValueError`` unless the head is above the root along +Z in most frames (a Z-up world frame)."""
    up = np.concatenate([w[:, _HEAD] - w[:, _ROOT] for w in worlds])  # (frames, 3)
    direction = np.median(up, axis=0)
    if direction[2] <= np.abs(direction[:2]).max():
        raise ValueError(f"camera augmentation needs a world frame with Z up (Human3.6M, prepare mocap); the "
                         f"median head-minus-root vector here is {np.round(direction, 3).tolist()} m")


def training_windows(sequences: SequenceLike[Sequence], frames: int, data: DataConfig,
                     seed: int) -> WindowDataset:
    """The training Dataset that ``data`` asks for: plain windows or camera-augmented ones."""
    if not data.camera_augmentation:
        return WindowDataset(sequences, frames, stride=data.stride, flip=data.flip, seed=seed)
    dataset = CameraAugmentedWindows(sequences, frames, stride=data.stride, flip=data.flip, seed=seed,
                                     noise=DetectorNoise() if data.augment_noise else None)
    logger.info("camera augmentation: %d takes (one view each) of %d sequences, %s 2D noise",
                len(dataset.sequences), len(sequences), "detector-like" if data.augment_noise else "no")
    return dataset
