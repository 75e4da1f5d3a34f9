"""`posediffusion video`: reading a video, the 2D pass, BlazePose-33 -> Human3.6M-17, lifting, the render.

Most tests need neither MediaPipe (an optional extra) nor the real clip: they write a small synthetic mp4 and
stand in a fake detector that returns 33 landmarks per frame. The last tests run MediaPipe on the real clip
of the development data (``../shared/data/video/mmpose_demo.mp4``, beside the checkout, not shipped) and
skip without either.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from posediffusion import video
from posediffusion.cli import main
from posediffusion.render import render_video

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video" / "mmpose_demo.mp4"
SIZE, FPS, FRAMES = (64, 48), 12.5, 6

#: A person facing the camera, normalised BlazePose-33 coordinates (x, y).
STANDING = {0: (0.5, 0.2), 1: (0.51, 0.18), 2: (0.52, 0.18), 3: (0.53, 0.18), 4: (0.49, 0.18),
            5: (0.48, 0.18), 6: (0.47, 0.18), 7: (0.55, 0.19), 8: (0.45, 0.19), 9: (0.51, 0.23),
            10: (0.49, 0.23), 11: (0.57, 0.3), 12: (0.43, 0.3), 13: (0.6, 0.42), 14: (0.4, 0.42),
            15: (0.62, 0.52), 16: (0.38, 0.52), 17: (0.63, 0.54), 18: (0.37, 0.54), 19: (0.63, 0.55),
            20: (0.37, 0.55), 21: (0.62, 0.55), 22: (0.38, 0.55), 23: (0.54, 0.55), 24: (0.46, 0.55),
            25: (0.55, 0.72), 26: (0.45, 0.72), 27: (0.55, 0.88), 28: (0.45, 0.88), 29: (0.55, 0.9),
            30: (0.45, 0.9), 31: (0.56, 0.92), 32: (0.44, 0.92)}


def person(frame: int, visibility: float = 0.9) -> np.ndarray:
    """(33, 4) x, y, z, visibility of the standing person, swaying a little from frame to frame."""
    xy = np.array([STANDING[i] for i in range(33)]) + [0.02 * math.sin(frame), 0.0]
    return np.column_stack([xy, np.zeros(33), np.full(33, visibility)]).astype(np.float32)


class FakeDetector:
    """Stands in for MediaPipe: the standing person in every frame except those in ``absent``."""

    description = "fake detector"

    def __init__(self, absent: tuple[int, ...] = (), hidden: tuple[int, ...] = ()) -> None:
        self.absent, self.hidden, self.frames, self.closed = absent, hidden, 0, False

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        assert rgb.dtype == np.uint8 and rgb.shape == (SIZE[1], SIZE[0], 3)
        frame, self.frames = self.frames, self.frames + 1
        if frame in self.absent:
            return None
        points = person(frame)
        points[list(self.hidden), 3] = 0.02  # landmarks never visible
        return points

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_clip(path: Path, frames: int = FRAMES, fps: float = FPS) -> Path:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), SIZE, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=16, ffmpeg_log_level="error")
    writer.send(None)
    for k in range(frames):
        writer.send(np.full((SIZE[1], SIZE[0], 3), 40 * k, dtype=np.uint8))
    writer.close()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture
def fake_mediapipe(monkeypatch):
    """MediaPipe 'installed': the command's detector is a FakeDetector."""
    made = []

    def make() -> FakeDetector:
        made.append(FakeDetector())
        return made[-1]

    monkeypatch.setattr(video, "import_mediapipe", lambda: None)
    monkeypatch.setattr(video, "MediaPipePose", make)
    return made


def mp4_frames(path: Path) -> tuple[int, tuple[int, int]]:
    frames = video.iter_frames(path)
    shapes = [f.shape for f in frames]
    return len(shapes), (shapes[0][1], shapes[0][0])


# ---------------------------------------------------------------------------------------------------------
# Reading the video


def test_probe_and_stream_frames(clip):
    info = video.probe_video(clip)
    assert (info.image_size, info.fps, info.fps_source, info.frames_estimate) == (SIZE, FPS, "metadata", 6)
    override = video.probe_video(clip, fps=30)
    assert override.fps == 30.0 and override.fps_source == "--fps"
    frames = video.iter_frames(clip)
    first = next(frames)  # a generator: one decoded frame at a time
    assert first.shape == (SIZE[1], SIZE[0], 3) and first.dtype == np.uint8
    assert 1 + sum(1 for _ in frames) == FRAMES


def test_unreadable_videos_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such video file"):
        video.probe_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="not a regular file"):
        video.probe_video(tmp_path)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(ValueError, match=r"notes\.mp4: not a readable video \(Invalid data") as err:
        video.probe_video(text)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="not a readable video"):
        next(video.iter_frames(text))
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--fps .*finite positive"):
            video.check_fps(bad, "--fps")


# ---------------------------------------------------------------------------------------------------------
# MediaPipe and the mapping to Human3.6M-17


def test_missing_mediapipe_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` fails as if not installed
    with pytest.raises(video.MediaPipeUnavailable, match=r"not installed: pip install -e '\.\[video\]'"):
        video.import_mediapipe()
    monkeypatch.setitem(sys.modules, "mediapipe", SimpleNamespace(__version__="1.2.2"))  # no legacy API
    with pytest.raises(video.MediaPipeUnavailable, match=r"1\.2\.2 has no legacy mp\.solutions\.pose.*0\.10"):
        video.import_mediapipe()


def test_cli_without_mediapipe_is_exit_2_with_the_install_line(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    code = main(["video", str(clip), "--out", str(tmp_path / "o.npz"), "--render", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install -e '.[video]'" in err
    assert not list(tmp_path.iterdir())


def test_landmarks_from_a_synthetic_mediapipe_result():
    landmarks = [SimpleNamespace(x=x, y=y, z=z, visibility=v) for x, y, z, v in person(0)]
    result = SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=landmarks))
    np.testing.assert_allclose(video.landmarks_from_result(result), person(0), atol=1e-6)
    assert video.landmarks_from_result(SimpleNamespace(pose_landmarks=None)) is None
    with pytest.raises(ValueError, match="expected 33"):
        video.landmarks_from_result(SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=landmarks[:17])))


def test_blazepose_is_mapped_to_h36m_and_gaps_are_filled_as_lift_does():
    w, h = 640, 480
    rows = np.stack([person(f) for f in range(5)])
    rows[2] = np.nan  # no person in frame 2
    rows[1, 15, 3] = 0.1  # left wrist barely visible in frame 1
    rows[3, [2, 5], 3] = 0.1  # eyes hidden in frame 3: Head falls back to the ears
    lm = video.VideoLandmarks(rows, (w, h), 25.0, Path("walk.mp4"))
    track = video.landmarks_to_keypoints(lm)
    size = np.array([w, h])
    expected = {"Hip": (23, 24), "RHip": (24,), "RAnkle": (28,), "LKnee": (25,), "Spine": (23, 24, 11, 12),
                "Thorax": (11, 12), "Neck/Nose": (0,), "Head": (2, 5), "LWrist": (15,), "RShoulder": (12,)}
    from posediffusion.skeleton import H36M_17

    for name, sources in expected.items():
        j = H36M_17.joints.index(name)
        for f in (0, 4):
            np.testing.assert_allclose(track.pixels[f, j], rows[f, list(sources), :2].mean(0) * size,
                                       rtol=1e-5, err_msg=name)
    head = H36M_17.joints.index("Head")
    np.testing.assert_allclose(track.pixels[3, head], rows[3, [7, 8], :2].mean(0) * size, rtol=1e-5)
    wrist = H36M_17.joints.index("LWrist")
    assert track.filled[2].all() and track.filled[1, wrist] and track.filled.sum() == 17 + 1
    np.testing.assert_allclose(track.pixels[1, wrist], (track.pixels[0, wrist] + track.pixels[2, wrist]) / 2,
                               rtol=1e-5)  # interpolated over time (frame 2 itself interpolated 1..3)
    assert track.fps == 25.0 and track.image_size == (w, h)
    lm.landmarks[1:] = np.nan  # a person in one frame only: the error names the video, not a temporary file
    with pytest.raises(ValueError, match=r"^walk\.mp4 \(2D keypoints\): only 1 frame with usable keypoints"):
        video.landmarks_to_keypoints(lm)


def test_detect_landmarks_streams_the_video_through_the_detector(clip):
    detector = FakeDetector(absent=(1,))
    lm = video.detect_landmarks(clip, detector=detector)
    assert detector.frames == FRAMES and not detector.closed  # a detector given is the caller's to close
    assert lm.landmarks.shape == (FRAMES, 33, 4) and lm.image_size == SIZE and lm.fps == FPS
    assert lm.detected.tolist() == [True, False, True, True, True, True]
    np.testing.assert_allclose(lm.landmarks[3], person(3))
    with pytest.raises(ValueError, match=r"clip\.mp4: no person found in any of the 6 frames"):
        video.detect_landmarks(clip, detector=FakeDetector(absent=tuple(range(FRAMES))))
    with pytest.raises(ValueError, match="detector returned landmarks of shape"):
        video.detect_landmarks(clip, detector=lambda rgb: np.zeros((17, 4)))


def test_native_stderr_is_kept_off_the_terminal_unless_the_block_fails(capfd, caplog):
    with video._native_stderr_to_log() as stderr:
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        stderr.write("progress\n")
    assert capfd.readouterr().err == "progress\n"
    with pytest.raises(RuntimeError), video._native_stderr_to_log():
        os.write(2, b"E0000 graph failed\n")
        raise RuntimeError("boom")
    assert "graph failed" in capfd.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# The command


def test_cli_video_to_3d_with_render_and_2d(clip, tmp_path, tiny_checkpoint, fake_mediapipe, capsys):
    out, movie, lm = tmp_path / "pose3d.npz", tmp_path / "side.mp4", tmp_path / "lm.npz"
    code = main(["video", str(clip), "--out", str(out), "--render", str(movie), "--save-2d", str(lm),
                 "--json", str(tmp_path / "p.json"), "--checkpoint", str(tiny_checkpoint),
                 "--hypotheses", "2", "--steps", "1"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"6 frames, 64x48, {FPS:g} fps (metadata); a person found in 6 of them" in printed
    assert fake_mediapipe[0].frames == FRAMES and fake_mediapipe[0].closed
    data = np.load(out)
    assert data["pose_3d"].shape == (FRAMES, 17, 3) and float(data["fps"]) == FPS
    assert data["image_size"].tolist() == list(SIZE) and not data["filled"].any()
    settings = json.loads(str(data["settings"]))
    assert settings["format"] == "video" and settings["detector"] == "fake detector"
    assert settings["video"]["fps_source"] == "metadata" and settings["frames_with_person"] == FRAMES
    frames, (width, height) = mp4_frames(movie)
    assert frames == FRAMES and width % 16 == 0 and height == 320
    assert json.loads((tmp_path / "p.json").read_text())["fps"] == FPS
    # the saved 2D is a MediaPipe npz that `lift` reads: the same track without a second 2D pass
    assert main(["lift", str(lm), "--out", str(tmp_path / "again.npz"), "--checkpoint", str(tiny_checkpoint),
                 "--hypotheses", "2", "--steps", "1"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "again.npz")["keypoints_2d"], data["keypoints_2d"],
                               rtol=1e-5)


def test_cli_fps_override_and_missing_frames(clip, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(video, "import_mediapipe", lambda: None)
    monkeypatch.setattr(video, "MediaPipePose", lambda: FakeDetector(absent=(0, 4)))
    code = main(["video", str(clip), "--out", str(tmp_path / "o.npz"), "--fps", "30",
                 "--checkpoint", str(tiny_checkpoint), "--hypotheses", "1", "--steps", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and "a person found in 4 of them" in printed
    assert "uncertainty: not measured with one hypothesis" in printed  # --hypotheses 1
    data = np.load(tmp_path / "o.npz")
    assert json.loads(str(data["settings"]))["video"]["fps_source"] == "--fps"
    assert float(data["fps"]) == 30.0 and data["filled"].sum(axis=1).tolist() == [17, 0, 0, 0, 17, 0]


def test_cli_joint_never_seen_is_inferred_as_lift_does(clip, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(video, "import_mediapipe", lambda: None)
    monkeypatch.setattr(video, "MediaPipePose", lambda: FakeDetector(hidden=(16,)))  # right wrist
    code = main(["video", str(clip), "--out", str(tmp_path / "o.npz"), "--checkpoint", str(tiny_checkpoint),
                 "--hypotheses", "1", "--steps", "1"])
    assert code == 0 and "INFERRED from a body prior (not measured): RWrist" in capsys.readouterr().out
    data = np.load(tmp_path / "o.npz")
    assert json.loads(str(data["settings"]))["inferred_joints"] == ["RWrist"]
    assert data["filled"][:, 16].all() and data["filled"].sum() == FRAMES


@pytest.mark.parametrize(("extra", "message"), [
    (["--render", "o.avi"], "--render .*must end in .gif or .mp4"),
    (["--save-2d", "o.npz"], "--save-2d .*the same file as --out"),
    (["--fps", "0"], "--fps 0.0: must be a finite positive number"),
    (["--min-confidence", "2"], "--min-confidence 2.0: must be between 0 and 1"),
    (["--hypotheses", "0"], "--hypotheses 0: must be at least 1"),
    (["--device", "banana"], "--device 'banana'"),
])
def test_cli_bad_arguments_write_nothing(clip, tmp_path, fake_mediapipe, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["video", str(clip), "--out", "o.npz", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert __import__("re").search(message, err), err
    assert not fake_mediapipe and not list(tmp_path.iterdir())  # stopped before the 2D pass


def test_cli_unreadable_video_and_no_person(clip, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    assert main(["video", str(text), "--out", str(tmp_path / "o.npz")]) == 2
    assert "notes.mp4: not a readable video" in capsys.readouterr().err
    monkeypatch.setattr(video, "import_mediapipe", lambda: None)
    monkeypatch.setattr(video, "MediaPipePose", lambda: FakeDetector(absent=tuple(range(FRAMES))))
    assert main(["video", str(clip), "--out", str(tmp_path / "o.npz"), "--checkpoint",
                 str(tiny_checkpoint)]) == 2
    assert "no person found in any of the 6 frames" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


# ---------------------------------------------------------------------------------------------------------
# The side-by-side render


def synthetic_frames(count: int, pulled: list[int]):
    for k in range(count):
        pulled.append(k)
        yield np.full((48, 64, 3), 30 * k, dtype=np.uint8)


def render_inputs(frames: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pose = rng.normal(scale=0.3, size=(frames, 17, 3))
    return rng.uniform(5, 40, size=(frames, 17, 2)), pose - pose[:, :1]


def test_render_video_reads_frames_lazily_and_once(tmp_path):
    kp, pose = render_inputs()
    pulled: list[int] = []
    filled = np.zeros((5, 17), bool)
    filled[1, 3] = True
    out = render_video(synthetic_frames(5, pulled), kp, pose, tmp_path / "v.mp4", image_size=(64, 48),
                       uncertainty=np.full((5, 17), 0.02), filled=filled, fps=10, max_frames=2)
    assert pulled == [0, 1]  # nothing decoded past the last frame rendered
    assert mp4_frames(out) == (2, (16 * round(320 * 64 / 48 / 16) + 320, 320))
    pulled.clear()
    out = render_video(synthetic_frames(5, pulled), kp, pose, tmp_path / "v.gif", image_size=(64, 48),
                       stride=2)
    from PIL import Image

    with Image.open(out) as im:
        assert im.n_frames == 3
    assert pulled == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.gif", "v.mp4"]


def test_render_video_short_video_and_bad_frames(tmp_path, caplog):
    kp, pose = render_inputs()
    out = render_video(synthetic_frames(3, []), kp, pose, tmp_path / "short.mp4", image_size=(64, 48))
    assert mp4_frames(out)[0] == 3 and "video ended after 3 frames" in caplog.text
    with pytest.raises(ValueError, match=r"video frame of shape \(48, 64, 3\), expected \(480, 640, 3\)"):
        render_video(synthetic_frames(3, []), kp, pose, tmp_path / "bad.mp4", image_size=(640, 480))
    with pytest.raises(ValueError, match="the video gave no frames"):
        render_video(iter(()), kp, pose, tmp_path / "none.mp4", image_size=(64, 48))
    with pytest.raises(ValueError, match="filled must have shape"):
        render_video(iter(()), kp, pose, tmp_path / "none.mp4", image_size=(64, 48), filled=np.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.mp4"]


# ---------------------------------------------------------------------------------------------------------
# MediaPipe on the real clip (needs the `video` extra and the development data)

needs_clip = pytest.mark.skipif(not CLIP.is_file(), reason=f"development clip not found: {CLIP}")


@needs_clip
def test_mediapipe_on_the_real_clip():
    pytest.importorskip("mediapipe")
    lm = video.detect_landmarks(CLIP)
    assert lm.image_size == (960, 540) and lm.fps == 5.0 and lm.landmarks.shape == (5, 33, 4)
    assert lm.detected.sum() >= 4 and "mp.solutions.pose" in lm.detector
    visible = lm.landmarks[lm.detected][..., 3] > 0.5
    assert visible[:, [11, 12, 23, 24]].all()  # shoulders and hips of the tracked person


@needs_clip
def test_cli_on_the_real_clip(tmp_path, tiny_checkpoint, capsys):
    pytest.importorskip("mediapipe")
    # the tracked walker's right wrist is hidden behind the body in all 5 frames: placed by the body prior
    code = main(["video", str(CLIP), "--out", str(tmp_path / "o.npz"), "--render", str(tmp_path / "o.mp4"),
                 "--checkpoint", str(tiny_checkpoint), "--hypotheses", "2", "--steps", "1"])
    assert code == 0, capsys.readouterr().err
    data = np.load(tmp_path / "o.npz")
    assert data["pose_3d"].shape == (5, 17, 3) and float(data["fps"]) == 5.0
    assert mp4_frames(tmp_path / "o.mp4")[0] == 5
