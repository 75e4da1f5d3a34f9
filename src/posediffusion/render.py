"""2D input beside 3D prediction (and ground truth) as a gif or mp4 animation; or video frames with the 2D
keypoints drawn on them beside the 3D prediction (:func:`render_video`).

matplotlib, Pillow and imageio are imported inside the functions (Agg backend), so importing this module is
cheap. One figure is built per clip and its artists are updated frame by frame; frames stream to the
writer (mp4 via imageio-ffmpeg) or are palette-reduced before Pillow assembles the gif.

Views: the camera frame has x right, y down, z forward, so the 3D panels plot (x, z, -y): the person stands
upright, depth goes into the screen. Axes are fixed for the whole clip (computed once from all frames).
Colours: left side blue, right side red, centre black.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.io_utils import atomic_path, read_npz
from posediffusion.skeleton import H36M_17, Skeleton

logger = logging.getLogger(__name__)

SIDE_COLOURS = {"left": "tab:blue", "right": "tab:red", "centre": "black"}
PANEL_INCHES, DPI = 4.0, 80  # 320 x 320 px per panel: a multiple of 16, as H.264 wants
PANEL_PX = int(PANEL_INCHES * DPI)
#: Bone colours drawn over video frames (black would vanish on dark footage); joint markers: white where
#: detected, magenta where the joint was missing and filled.
VIDEO_SIDE_COLOURS = {"left": "deepskyblue", "right": "red", "centre": "yellow"}
DETECTED_COLOUR, FILLED_COLOUR = "white", "magenta"
PREDICTION_KEYS = ("keypoints_2d", "image_size", "pose_3d", "ground_truth", "uncertainty", "hypotheses",
                   "fps")


def render_animation(
    keypoints_2d: np.ndarray,
    prediction: np.ndarray,
    out_path: str | Path,
    ground_truth: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    fps: float = 50.0,
    skeleton: Skeleton = H36M_17,
    image_size: tuple[int, int] | None = None,
    title: str | None = None,
    max_frames: int | None = None,
    stride: int = 1,
) -> Path:
    """Write an animation of the 2D input and the 3D prediction to ``out_path`` (.gif or .mp4), atomically.

    Args:
        keypoints_2d: (F, J, 2) pixels (when ``image_size`` is given) or normalised screen coordinates.
        prediction: (F, J, 3) metres, root-relative, camera frame (x right, y down, z forward).
        out_path: destination; the suffix picks the container (.gif via Pillow, .mp4 via imageio-ffmpeg).
            A new path or a regular file (replaced); a symlink writes to its target; folders, devices
            and FIFOs are refused (``io_utils.check_output_path``).
        ground_truth: optional (F, J, 3) metres, drawn as a third panel.
        uncertainty: optional (F, J) metres per joint, drawn as marker size and colour in the prediction;
            all NaN (``lift`` with one hypothesis: no spread to measure) draws none.
        fps: frame rate of the input; the output plays at ``fps / stride`` so time runs at real speed.
        skeleton: bones and left/right sides.
        image_size: (width, height) pixels of ``keypoints_2d``; ``None`` means normalised coordinates.
        title: optional figure title.
        max_frames: render at most this many frames (after ``stride``).
        stride: render every ``stride``-th frame.
    Returns:
        The written path.
    """
    out_path = Path(out_path)
    frames = _frame_indices(out_path, len(prediction), max_frames, stride, fps)
    uncertainty = _measured(uncertainty)
    _check_arrays(keypoints_2d, prediction, ground_truth, uncertainty, skeleton.num_joints)
    poses = {"prediction": prediction} | ({"ground truth": ground_truth} if ground_truth is not None else {})
    scene = _Scene(keypoints_2d, poses, uncertainty, skeleton, image_size, title)
    _write_animation(out_path, scene, scene.images(frames), fps / stride)
    logger.info("wrote %s (%d frames at %.3g fps)", out_path, len(frames), fps / stride)
    return out_path


def _write_animation(out_path: Path, scene: _Scene, images: Iterator[np.ndarray], fps: float) -> None:
    """Write ``images`` as a gif or mp4 (by suffix) atomically, closing ``scene`` whatever happens."""
    with atomic_path(out_path) as tmp:
        try:
            if out_path.suffix.lower() == ".gif":
                _write_gif(tmp, images, fps)
            else:
                _write_mp4(tmp, images, fps)
        finally:
            scene.close()


def render_video(
    frames: Iterable[np.ndarray],
    keypoints_2d: np.ndarray,
    prediction: np.ndarray,
    out_path: str | Path,
    image_size: tuple[int, int],
    uncertainty: np.ndarray | None = None,
    filled: np.ndarray | None = None,
    fps: float = 50.0,
    skeleton: Skeleton = H36M_17,
    title: str | None = None,
    max_frames: int | None = None,
    stride: int = 1,
    progress: bool = False,
) -> Path:
    """Write the video's frames with the 2D keypoints drawn on them beside the 3D prediction (.gif/.mp4).

    Args:
        frames: the video's frames in order, (H, W, 3) uint8 RGB with (W, H) = ``image_size``; frame k goes
            with ``keypoints_2d[k]``. Consumed lazily, once: only one frame is held at a time (each is
            shrunk to the panel's size), and nothing is read past the last frame rendered, so a generator
            that decodes the video keeps memory flat for any length.
        keypoints_2d: (F, J, 2) pixels of the frames.
        prediction: (F, J, 3) metres, root-relative, camera frame (x right, y down, z forward).
        out_path: .gif or .mp4, written atomically as by :func:`render_animation`.
        image_size: (width, height) pixels of the frames.
        uncertainty: optional (F, J) metres, drawn on the 3D panel (all NaN: none, as above).
        filled: optional (F, J) bool: joints that were missing and filled, drawn in magenta (others white).
        fps: the video's frame rate; the output plays at ``fps / stride``.
        skeleton, title, max_frames, stride: as for :func:`render_animation`.
        progress: a tqdm bar (else a log line every 100 frames).
    Returns:
        The written path. ``ValueError`` for bad arrays or options, frames of another size than
        ``image_size``, or no frame at all; a video shorter than the keypoints renders what it has, with a
        warning.
    """
    out_path = Path(out_path)
    indices = _frame_indices(out_path, len(prediction), max_frames, stride, fps)
    uncertainty = _measured(uncertainty)
    _check_arrays(keypoints_2d, prediction, None, uncertainty, skeleton.num_joints)
    if filled is not None and np.shape(filled) != np.shape(prediction)[:2]:
        raise ValueError(f"render: filled must have shape {np.shape(prediction)[:2]}, got {np.shape(filled)}")
    size = tuple(int(v) for v in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"render: image_size must be (width, height) in pixels, got {image_size}")
    scene = _Scene(keypoints_2d, {"prediction": prediction}, uncertainty, skeleton, size, title,
                   video=True, filled=filled)
    _write_animation(out_path, scene, scene.video_images(frames, indices, progress), fps / stride)
    logger.info("wrote %s (%d frames at %.3g fps)", out_path, scene.rendered, fps / stride)
    return out_path


def load_prediction(path: str | Path) -> dict[str, np.ndarray]:
    """Read and check the npz that ``posediffusion lift`` writes.

    Keys: ``keypoints_2d`` (F, 17, 2) px, ``image_size`` (2,), ``pose_3d`` (F, 17, 3) m; optional
    ``ground_truth`` (F, 17, 3), ``uncertainty`` (F, 17; dropped when all NaN: one hypothesis, not
    measured), ``hypotheses`` (H, F, 17, 3), ``fps`` scalar.
    Raises ``FileNotFoundError``/``ValueError`` naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such prediction file")
    npz = read_npz(path, what="prediction", hint="npz")
    data = {k: np.asarray(npz[k]) for k in PREDICTION_KEYS if k in npz}
    missing = [k for k in ("keypoints_2d", "image_size", "pose_3d") if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; "
                         "expected the npz written by `posediffusion lift`")
    if "uncertainty" in data and _measured(data["uncertainty"]) is None:
        del data["uncertainty"]
    n = len(data["pose_3d"])
    shapes = {"keypoints_2d": (n, 17, 2), "pose_3d": (n, 17, 3), "image_size": (2,),
              "ground_truth": (n, 17, 3), "uncertainty": (n, 17)}
    for key, shape in shapes.items():
        if key in data and data[key].shape != shape:
            raise ValueError(f"{path}: '{key}' must have shape {shape}, got {data[key].shape}")
    if "hypotheses" in data and data["hypotheses"].shape[1:] != (n, 17, 3):
        raise ValueError(f"{path}: 'hypotheses' must have shape (H, {n}, 17, 3), "
                         f"got {data['hypotheses'].shape}")
    for key, value in data.items():
        if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
            raise ValueError(f"{path}: '{key}' must hold real numbers, got dtype {value.dtype}")
        if not np.isfinite(value.astype(np.float64)).all():
            raise ValueError(f"{path}: '{key}' contains NaN or infinite values")
    if "fps" in data and not (data["fps"].size == 1 and float(data["fps"].reshape(-1)[0]) > 0):
        raise ValueError(f"{path}: 'fps' must be one positive number, got {data['fps'].tolist()}")
    size = data["image_size"]
    if not ((size > 0).all() and (size == np.round(size)).all()):
        raise ValueError(f"{path}: 'image_size' must be two positive whole numbers, got {size.tolist()}")
    return data


# ---------------------------------------------------------------------------------------------------------


def _frame_indices(out_path: Path, num_frames: int, max_frames: int | None, stride: int,
                   fps: float) -> np.ndarray:
    """Validate the output options -> indices of the frames to render."""
    if out_path.suffix.lower() not in (".gif", ".mp4"):
        raise ValueError(f"{out_path}: output must end in .gif or .mp4")
    if stride < 1 or (max_frames is not None and max_frames < 1) or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"{out_path}: need stride >= 1, max_frames >= 1 and fps > 0 "
                         f"(got {stride}, {max_frames}, {fps})")
    return np.arange(0, num_frames, stride)[:max_frames]


def _measured(uncertainty: np.ndarray | None) -> np.ndarray | None:
    """``None`` for an uncertainty that is all NaN (not measured: ``lift`` with one hypothesis); partly NaN
    values are left for :func:`_check_arrays` to refuse."""
    if uncertainty is not None:
        values = np.asarray(uncertainty)
        if values.size and np.issubdtype(values.dtype, np.floating) and np.isnan(values).all():
            return None
    return uncertainty


def _check_arrays(keypoints_2d: np.ndarray, prediction: np.ndarray, ground_truth: np.ndarray | None,
                  uncertainty: np.ndarray | None, num_joints: int) -> None:
    n = len(prediction)
    expected = {"keypoints_2d": (keypoints_2d, (n, num_joints, 2)),
                "prediction": (prediction, (n, num_joints, 3)),
                "ground_truth": (ground_truth, (n, num_joints, 3)),
                "uncertainty": (uncertainty, (n, num_joints))}
    for name, (array, shape) in expected.items():
        if array is None:
            continue
        if np.shape(array) != shape:
            raise ValueError(f"render: {name} must have shape {shape}, got {np.shape(array)}")
        if not np.isfinite(array).all():
            raise ValueError(f"render: {name} contains NaN or infinite values")
    if n == 0:
        raise ValueError("render: no frames to render")


def _bone_colours(skeleton: Skeleton, colours: dict[str, str] = SIDE_COLOURS) -> list[str]:
    """Colour of each (child, parent) bone by the child's side."""
    def side(j: int) -> str:
        return "left" if j in skeleton.left else "right" if j in skeleton.right else "centre"
    return [colours[side(child)] for child, _ in skeleton.bones()]


def _video_panel_px(image_size: tuple[int, int]) -> int:
    """Width in pixels of a panel PANEL_PX high that fits a frame of ``image_size``: a multiple of 16."""
    return max(16, int(round(PANEL_PX * image_size[0] / image_size[1] / 16)) * 16)


class _Scene:
    """One matplotlib figure with a 2D panel and one 3D panel per pose sequence; updated per frame.

    With ``video=True`` the 2D panel shows the video frame (``set_frame``) with the keypoints on it, is as
    wide as the frame's aspect needs, and marks filled joints (``filled``).
    """

    def __init__(self, keypoints_2d: np.ndarray, poses: dict[str, np.ndarray], uncertainty: np.ndarray | None,
                 skeleton: Skeleton, image_size: tuple[int, int] | None, title: str | None,
                 video: bool = False, filled: np.ndarray | None = None) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.keypoints_2d, self.uncertainty, self.title = keypoints_2d, uncertainty, title
        self.filled, self.rendered = filled, 0
        self.bones = skeleton.bones()
        # camera (x right, y down, z forward) -> plot (x, depth z, up -y)
        self.views = {name: np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)  # (F, J, 3)
                      for name, p in poses.items()}
        # A bare Figure on an Agg canvas: no pyplot, so no global backend switch or figure registry.
        width_2d = _video_panel_px(image_size) / PANEL_PX if video and image_size else 1.0
        self.figure = Figure(figsize=(PANEL_INCHES * (width_2d + len(poses)), PANEL_INCHES), dpi=DPI)
        FigureCanvasAgg(self.figure)
        self.grid = self.figure.add_gridspec(1, 1 + len(poses), width_ratios=[width_2d] + [1.0] * len(poses))
        colours = _bone_colours(skeleton, VIDEO_SIDE_COLOURS if video else SIDE_COLOURS)
        self.lines_2d = self._setup_2d(image_size, colours)
        self.frame_image = self.points_2d = None
        if video and image_size is not None:
            self._setup_video(image_size)
        colours = _bone_colours(skeleton)
        radius = max(float(np.abs(v).max()) for v in self.views.values()) * 1.05 + 1e-6
        self.lines_3d = {name: self._setup_3d(k + 2, name, radius, colours)
                         for k, name in enumerate(self.views)}
        self.joints = self._setup_uncertainty() if uncertainty is not None else None
        self.suptitle = self.figure.suptitle("")
        self.figure.subplots_adjust(left=0.05, right=0.97, bottom=0.1, top=0.86, wspace=0.2)

    def _setup_2d(self, image_size: tuple[int, int] | None, colours: list[str]) -> list[Any]:
        ax = self.figure.add_subplot(self.grid[0, 0])
        if image_size is not None:
            (x0, x1), (y0, y1) = (0, image_size[0]), (0, image_size[1])
        else:
            low, high = self.keypoints_2d.min(axis=(0, 1)), self.keypoints_2d.max(axis=(0, 1))
            pad = 0.05 * float((high - low).max()) + 1e-6
            (x0, y0), (x1, y1) = low - pad, high + pad
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)  # image rows grow downwards
        ax.set_aspect("equal")
        ax.set_title("2D input")
        return [ax.plot([], [], color=c, lw=2)[0] for c in colours]

    def _setup_video(self, image_size: tuple[int, int]) -> None:
        """The frame under the 2D lines (shrunk to about the panel's pixels) and the joint markers."""
        ax = self.lines_2d[0].axes
        w, h = image_size
        self.frame_size = image_size
        scale = min(_video_panel_px(image_size) / w, PANEL_PX / h, 1.0)
        self.thumbnail = (max(1, round(w * scale)), max(1, round(h * scale)))
        self.frame_image = ax.imshow(np.zeros((self.thumbnail[1], self.thumbnail[0], 3), np.uint8),
                                     extent=(0, w, h, 0), interpolation="bilinear", zorder=0)
        self.points_2d = ax.scatter(np.zeros(len(self.keypoints_2d[0])), np.zeros(len(self.keypoints_2d[0])),
                                    s=14, c=DETECTED_COLOUR, edgecolors="black", linewidths=0.5, zorder=3)
        ax.set_axis_off()
        ax.set_title("video + 2D" + (f" ({FILLED_COLOUR}: filled)" if self.filled is not None else ""))

    def set_frame(self, image: np.ndarray) -> None:
        """Show ``image`` (H, W, 3) uint8 RGB under the 2D keypoints; ``ValueError`` for another size."""
        from PIL import Image

        w, h = self.frame_size
        if np.shape(image) != (h, w, 3):
            raise ValueError(f"render: video frame of shape {np.shape(image)}, expected ({h}, {w}, 3) for "
                             f"image size {w}x{h}")
        small = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize(self.thumbnail,
                                                                          Image.Resampling.BILINEAR)
        self.frame_image.set_data(np.asarray(small))

    def _setup_3d(self, position: int, name: str, radius: float, colours: list[str]) -> list[Any]:
        ax = self.figure.add_subplot(self.grid[0, position - 1], projection="3d")
        ax.view_init(elev=15.0, azim=-70.0)
        for setter in (ax.set_xlim3d, ax.set_ylim3d, ax.set_zlim3d):
            setter(-radius, radius)
        ax.set_box_aspect((1, 1, 1))
        ax.set_xlabel("x (m)")
        ax.set_ylabel("depth z (m)")
        ax.set_zlabel("up -y (m)")
        ax.set_title(f"3D {name}")
        return [ax.plot([], [], [], color=c, lw=2)[0] for c in colours]

    def _setup_uncertainty(self) -> Any:
        """Scatter on the prediction panel: marker size and colour grow with per-joint uncertainty."""
        ax = self.lines_3d["prediction"][0].axes
        self.uncertainty_max = float(self.uncertainty.max()) + 1e-9
        scatter = ax.scatter([], [], [], c=[], cmap="viridis", vmin=0.0, vmax=self.uncertainty_max)
        self.figure.colorbar(scatter, ax=ax, orientation="horizontal", shrink=0.5, pad=0.1,
                             label="uncertainty (m)")
        return scatter

    def draw(self, frame: int) -> np.ndarray:
        """Update every artist to ``frame`` and return the canvas as (H, W, 3) uint8."""
        xy = self.keypoints_2d[frame]
        for line, (c, p) in zip(self.lines_2d, self.bones, strict=True):
            line.set_data(xy[[c, p], 0], xy[[c, p], 1])
        if self.points_2d is not None:
            self.points_2d.set_offsets(xy)
            if self.filled is not None:
                self.points_2d.set_facecolors([FILLED_COLOUR if f else DETECTED_COLOUR
                                               for f in self.filled[frame]])
        for name, lines in self.lines_3d.items():
            pose = self.views[name][frame]
            for line, (c, p) in zip(lines, self.bones, strict=True):
                line.set_data_3d(pose[[c, p], 0], pose[[c, p], 1], pose[[c, p], 2])
        if self.joints is not None:
            pose, sigma = self.views["prediction"][frame], self.uncertainty[frame]
            self.joints._offsets3d = (pose[:, 0], pose[:, 1], pose[:, 2])  # mplot3d's way to move a scatter
            self.joints.set_array(sigma)
            self.joints.set_sizes(10.0 + 150.0 * sigma / self.uncertainty_max)
        self.suptitle.set_text(f"{self.title + ' - ' if self.title else ''}frame {frame}")
        self.figure.canvas.draw()
        return np.asarray(self.figure.canvas.buffer_rgba())[..., :3].copy()

    def images(self, frames: np.ndarray) -> Iterator[np.ndarray]:
        for k, frame in enumerate(frames):
            if k and k % 100 == 0:
                logger.info("rendered %d / %d frames", k, len(frames))
            yield self.draw(int(frame))

    def video_images(self, video: Iterable[np.ndarray], frames: np.ndarray,
                     progress: bool) -> Iterator[np.ndarray]:
        """Draw ``frames`` (sorted indices) over the matching images of ``video``, read lazily: nothing
        past the last index is pulled. Counts what it drew in ``rendered``."""
        from tqdm.auto import tqdm

        wanted = iter(int(f) for f in frames)
        target = next(wanted, None)
        read = 0
        with tqdm(total=len(frames), unit="frame", desc="render", disable=not progress, leave=False) as bar:
            for k, image in enumerate(video):
                read = k + 1
                if k < target:
                    continue
                self.set_frame(image)
                yield self.draw(k)
                self.rendered += 1
                bar.update()
                if not progress and self.rendered % 100 == 0:
                    logger.info("rendered %d / %d frames", self.rendered, len(frames))
                target = next(wanted, None)
                if target is None:
                    return
        if not self.rendered:
            raise ValueError("render: the video gave no frames")
        logger.warning("the video ended after %d frames, before keypoint frame %d; rendered %d of %d",
                       read, target, self.rendered, len(frames))

    def close(self) -> None:
        self.figure.clear()


def _write_gif(path: Path, images: Iterator[np.ndarray], fps: float) -> None:
    """Pillow GIF; frames are reduced to an adaptive palette as they arrive to keep memory small."""
    from PIL import Image

    frames = [Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE) for img in images]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=max(int(round(1000.0 / fps)), 10), optimize=False, disposal=1)


def _write_mp4(path: Path, images: Iterator[np.ndarray], fps: float) -> None:
    """H.264 mp4 through imageio-ffmpeg's bundled ffmpeg, frames streamed."""
    import imageio_ffmpeg

    writer = None
    try:
        for img in images:
            if writer is None:
                writer = imageio_ffmpeg.write_frames(str(path), (img.shape[1], img.shape[0]), fps=fps,
                                                     codec="libx264", pix_fmt_out="yuv420p", quality=7,
                                                     macro_block_size=16, ffmpeg_log_level="error")
                writer.send(None)  # start the generator
            writer.send(np.ascontiguousarray(img))
    finally:
        if writer is not None:
            writer.close()
