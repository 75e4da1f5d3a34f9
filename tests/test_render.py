"""Rendering: decodable gif and mp4 with the right frame count, atomic output, CLI."""

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from posediffusion import render
from posediffusion.cli import main
from posediffusion.render import load_prediction, render_animation


def clip(frames: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.3, size=(frames, 17, 3))
    pose -= pose[:, :1]  # root-relative
    return rng.uniform(100, 500, size=(frames, 17, 2)), pose


def gif_frames(path) -> int:
    with Image.open(path) as im:
        return im.n_frames


def mp4_frames(path) -> int:
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return sum(1 for _ in reader)


def test_gif_with_ground_truth_and_uncertainty(tmp_path):
    kp, pose = clip(5)
    out = render_animation(kp, pose, tmp_path / "a.gif", ground_truth=pose * 0.9,
                           uncertainty=np.full((5, 17), 0.02), image_size=(640, 480), title="t")
    assert gif_frames(out) == 5
    with Image.open(out) as im:
        assert im.size == (3 * 320, 320)  # three panels
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]  # no temp file left behind


def test_mp4_stride_and_max_frames(tmp_path):
    kp, pose = clip(7)
    out = render_animation(kp, pose, tmp_path / "b.mp4", stride=2, max_frames=3)
    assert mp4_frames(out) == 3  # frames 0, 2, 4
    with imageio.get_reader(out, format="FFMPEG") as reader:
        meta = reader.get_meta_data()
    assert meta["size"] == (640, 320) and meta["fps"] == pytest.approx(25.0)


def test_upright_view_maps_camera_y_down_to_plot_up():
    # independent check of the (x, z, -y) view: a head above the pelvis (smaller camera y) plots higher
    kp, pose = clip(2)
    pose[:, 10] = [0.0, -0.7, 0.1]
    scene = render._Scene(kp, {"prediction": pose}, None, render.H36M_17, None, None)
    try:
        view = scene.views["prediction"]
        np.testing.assert_allclose(view[0, 10], [0.0, 0.1, 0.7])
    finally:
        scene.close()


def test_error_mid_render_leaves_no_file(tmp_path, monkeypatch):
    kp, pose = clip(4)
    original = render._Scene.draw

    def failing_draw(self, frame):
        if frame == 2:
            raise RuntimeError("boom")
        return original(self, frame)

    monkeypatch.setattr(render._Scene, "draw", failing_draw)
    for name in ("c.gif", "c.mp4"):
        with pytest.raises(RuntimeError, match="boom"):
            render_animation(kp, pose, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    kp, pose = clip(3)
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        render_animation(kp, pose, tmp_path / "x.avi")
    with pytest.raises(ValueError, match="keypoints_2d"):
        render_animation(kp[:2], pose, tmp_path / "x.gif")
    bad = pose.copy()
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        render_animation(kp, bad, tmp_path / "x.gif")
    with pytest.raises(ValueError, match="stride"):
        render_animation(kp, pose, tmp_path / "x.gif", stride=0)
    assert list(tmp_path.iterdir()) == []


def write_prediction(path, frames: int = 4, **extra) -> None:
    kp, pose = clip(frames)
    arrays = {"keypoints_2d": kp, "image_size": np.array([640, 480]), "pose_3d": pose, "fps": 30.0} | extra
    np.savez(path, **arrays)


def test_cli_render_gif(tmp_path, capsys):
    pred = tmp_path / "pred.npz"
    write_prediction(pred, hypotheses=np.zeros((3, 4, 17, 3)))
    out = tmp_path / "anim.gif"
    assert main(["render", str(pred), "--out", str(out), "--max-frames", "3"]) == 0
    assert gif_frames(out) == 3
    assert "wrote" in capsys.readouterr().out


def test_cli_and_loader_reject_bad_prediction_files(tmp_path, capsys):
    pred = tmp_path / "pred.npz"
    np.savez(pred, keypoints_2d=np.zeros((4, 17, 2)), image_size=np.array([640, 480]))
    assert main(["render", str(pred), "--out", str(tmp_path / "a.gif")]) == 2
    assert "pose_3d" in capsys.readouterr().err
    write_prediction(pred, uncertainty=np.zeros((4, 16)))
    with pytest.raises(ValueError, match="'uncertainty' must have shape"):
        load_prediction(pred)
    with pytest.raises(FileNotFoundError):
        load_prediction(tmp_path / "nope.npz")
    assert not (tmp_path / "a.gif").exists()


def test_side_colours_and_fixed_axes():
    children = [c for c, _ in render.H36M_17.bones()]
    colours = dict(zip(children, render._bone_colours(render.H36M_17), strict=True))
    assert colours[13] == "tab:blue" and colours[16] == "tab:red" and colours[7] == "black"
    kp, pose = clip(3)
    pose[2, 16] = [0.0, 0.0, 2.0]  # one far joint in the last frame sets the cube for every frame
    scene = render._Scene(kp, {"prediction": pose}, None, render.H36M_17, (640, 480), None)
    try:
        ax = scene.lines_3d["prediction"][0].axes
        scene.draw(0)
        limits = (ax.get_xlim3d(), ax.get_ylim3d(), ax.get_zlim3d())
        scene.draw(2)
        assert (ax.get_xlim3d(), ax.get_ylim3d(), ax.get_zlim3d()) == limits
        assert limits[1][1] >= 2.0  # depth axis covers z = 2 m from the first frame on
    finally:
        scene.close()


def test_prediction_fps_image_size_and_output_targets_are_checked(tmp_path, capsys):
    import os

    pose = np.zeros((3, 17, 3), np.float32)
    base = {"keypoints_2d": np.full((3, 17, 2), 10.0, np.float32), "pose_3d": pose,
            "image_size": np.array([100, 100])}
    for name, extra, message in (("fps.npz", {"fps": np.float32(-5)}, "'fps' must be one positive number"),
                                 ("size.npz", {"image_size": np.array([100.5, 100])}, "'image_size' must be"),
                                 ("str.npz", {"uncertainty": np.full((3, 17), "a")}, "must hold real")):
        np.savez(tmp_path / name, **{**base, **extra})
        with pytest.raises(ValueError, match=f"{name}: .*{message}"):
            load_prediction(tmp_path / name)
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npz: cannot read npz"):
        load_prediction(tmp_path / "empty.npz")
    os.mkfifo(tmp_path / "fifo.gif")
    with pytest.raises(ValueError, match="fifo.gif: is not a regular file"):
        render_animation(base["keypoints_2d"], pose, tmp_path / "fifo.gif")
    np.savez(tmp_path / "ok.npz", **base)
    for flags, message in ((["--fps", "inf"], "--fps inf"), (["--stride", "0"], "--stride 0"),
                           (["--max-frames", "0"], "--max-frames 0")):
        assert main(["render", str(tmp_path / "ok.npz"), "--out", str(tmp_path / "o.gif"), *flags]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o.gif").exists()
