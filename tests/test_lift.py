import json

import numpy as np
import pytest
import torch

from posediffusion.cli import main
from posediffusion.data.keypoints import save_keypoints_npz
from posediffusion.lift import LiftResult, lift_file, lift_keypoints

# tiny_model, tiny_checkpoint: shared fixtures (tests/conftest.py)


def _track(frames=23, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(300, 700, size=(1, 17, 2))
    drift = np.cumsum(rng.normal(0, 2, size=(frames, 1, 2)), axis=0)
    return (base + drift).astype(np.float32)


def test_any_length_is_covered_and_root_is_zero(tiny_model):
    for frames in (2, 9, 23):  # shorter than, equal to and longer than the 9-frame window
        result = lift_keypoints(_track(frames), (1000, 1000), tiny_model, hypotheses=2, steps=1)
        assert result.pose_3d.shape == (frames, 17, 3) and result.uncertainty.shape == (frames, 17)
        assert np.isfinite(result.pose_3d).all()
        np.testing.assert_allclose(result.pose_3d[:, 0], 0.0, atol=1e-7)


def test_windows_merge_to_the_per_window_result_where_windows_do_not_overlap(tiny_model):
    # stride == T: windows tile the clip, so each frame equals the single window's aggregated output.
    track = _track(18)
    result = lift_keypoints(track, (1000, 1000), tiny_model, hypotheses=3, steps=2, stride=9, flip=True,
                            aggregation="p-agg", seed=3, batch_windows=1)
    from posediffusion.camera import normalize_screen

    x2d = torch.as_tensor(normalize_screen(track, 1000, 1000)).reshape(2, 9, 17, 2)
    generator = torch.Generator().manual_seed(3)
    first = tiny_model.sample(x2d[:1], num_hypotheses=3, steps=2, generator=generator)
    second = tiny_model.sample(x2d[1:], num_hypotheses=3, steps=2, generator=generator)
    expected = torch.cat([first.mean(1)[0], second.mean(1)[0]]).numpy()
    np.testing.assert_allclose(result.pose_3d, expected - expected[:, :1], atol=1e-5)


def test_uncertainty_is_hypothesis_spread_and_hypotheses_kept(tiny_model):
    result = lift_keypoints(_track(9), (1000, 1000), tiny_model, hypotheses=4, steps=2, stride=9,
                            aggregation="p-agg", keep_hypotheses=True)
    hyps = result.hypotheses  # (H, F, 17, 3)
    assert hyps.shape == (4, 9, 17, 3)
    spread = np.linalg.norm(hyps - hyps.mean(0), axis=-1).mean(0)
    np.testing.assert_allclose(result.uncertainty, spread, atol=1e-5)
    np.testing.assert_allclose(result.pose_3d, hyps.mean(0) - hyps.mean(0)[:, :1], atol=1e-5)


def test_one_hypothesis_has_no_uncertainty_and_every_output_says_so(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track(12), (1000, 1000))
    out, js, csv, gif = (tmp_path / name for name in ("out.npz", "out.json", "out.csv", "out.gif"))
    code = main(["lift", str(src), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--hypotheses",
                 "1", "--steps", "1", "--flip", "--json", str(js), "--csv", str(csv), "--render", str(gif)])
    assert code == 0 and "uncertainty: not measured with one hypothesis" in capsys.readouterr().out
    data = np.load(out)
    assert data["uncertainty"].shape == (12, 17) and np.isnan(data["uncertainty"]).all()  # not 0: unmeasured
    assert np.isfinite(data["pose_3d"]).all()
    assert {v for row in json.loads(js.read_text())["uncertainty"] for v in row} == {None}  # strict JSON null
    rows = [line.split(",") for line in csv.read_text().splitlines()]
    column = rows[0].index("uncertainty")
    assert {row[column] for row in rows[1:]} == {""} and len(rows) == 1 + 12 * 17
    assert gif.stat().st_size > 0  # rendered without the uncertainty markers
    assert main(["render", str(out), "--out", str(tmp_path / "again.gif")]) == 0


def test_bad_input_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="at least 2 frames"):
        lift_keypoints(_track(1), (1000, 1000), tiny_model)
    bad = _track(5)
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lift_keypoints(bad, (1000, 1000), tiny_model)
    with pytest.raises(ValueError, match="all zero"):
        lift_keypoints(np.zeros((5, 17, 2), np.float32), (1000, 1000), tiny_model)
    with pytest.raises(ValueError, match="aggregation"):
        lift_keypoints(_track(5), (1000, 1000), tiny_model, aggregation="median")


def test_aggregation_names_labels_and_old_aliases(tiny_model):
    track = _track(12)
    new = lift_keypoints(track, (1000, 1000), tiny_model, hypotheses=2, steps=1, aggregation="j-agg")
    old = lift_keypoints(track, (1000, 1000), tiny_model, hypotheses=2, steps=1, aggregation="joint")
    assert new.settings["aggregation"] == old.settings["aggregation"] == "J-Agg (weak perspective)"
    assert list(new.alternatives) == ["J-Agg (weak perspective)", "P-Agg"]  # evaluate's labels
    np.testing.assert_array_equal(new.pose_3d, old.pose_3d)
    np.testing.assert_array_equal(new.pose_3d, new.alternatives["J-Agg (weak perspective)"])
    pose = lift_keypoints(track, (1000, 1000), tiny_model, hypotheses=2, steps=1, aggregation="pose")
    np.testing.assert_array_equal(pose.pose_3d, new.alternatives["P-Agg"])


def test_cli_accepts_canonical_and_old_aggregation_names(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track(12), (1000, 1000))
    for name, label in (("j-agg", "J-Agg (weak perspective)"), ("joint", "J-Agg (weak perspective)"),
                        ("pose", "P-Agg")):
        out = tmp_path / f"{name}.npz"
        assert main(["lift", str(src), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                     "--hypotheses", "2", "--steps", "1", "--aggregation", name]) == 0
        assert json.loads(str(np.load(out)["settings"]))["aggregation"] == label
        assert f"({label}, H=2" in capsys.readouterr().out


def test_lift_file_and_cli_write_outputs(tmp_path, tiny_checkpoint):
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track(12), (1000, 1000))
    result = lift_file(src, checkpoint=tiny_checkpoint, hypotheses=2, steps=1)
    assert isinstance(result, LiftResult) and result.settings["checkpoint"] == str(tiny_checkpoint)
    out, js, csv = tmp_path / "out.npz", tmp_path / "out.json", tmp_path / "out.csv"
    code = main(["lift", str(src), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--hypotheses",
                 "2", "--steps", "1", "--json", str(js), "--csv", str(csv), "--all-hypotheses"])
    assert code == 0
    data = np.load(out)
    assert data["pose_3d"].shape == (12, 17, 3) and data["hypotheses"].shape == (2, 12, 17, 3)
    assert len(json.loads(js.read_text())["pose_3d"]) == 12
    assert len(csv.read_text().splitlines()) == 1 + 12 * 17


def test_cli_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track(12), (1000, 1000))
    out = tmp_path / "out.npz"
    assert main(["lift", str(src), "--out", str(out), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("fmt", ["coco", "halpe", "openpose", "csv"])
def test_lift_cli_on_each_format(tmp_path, tiny_checkpoint, fmt):
    from tests.data.test_keypoints import (
        BODY25,
        COCO,
        H36M,
        HALPE,
        expected_h36m,
        source_points,
        write_coco_results,
        write_openpose,
    )

    frames = 10
    if fmt == "coco":
        pts = source_points(frames, 17)
        src = write_coco_results(tmp_path / "coco.json", pts, list(range(frames)))
        expected = expected_h36m(pts, COCO)
    elif fmt == "halpe":
        pts = source_points(frames, 26)
        src = write_coco_results(tmp_path / "halpe.json", pts, list(range(frames)))
        expected = expected_h36m(pts, HALPE)
    elif fmt == "openpose":
        pts = source_points(frames, 25)
        src = write_openpose(tmp_path / "openpose", pts, list(range(frames)))
        expected = expected_h36m(pts, BODY25)
    else:
        expected = source_points(frames, 17)
        src = tmp_path / "kp.csv"
        rows = ["frame,joint,x,y"] + [f"{f},{H36M[j]},{expected[f, j, 0]},{expected[f, j, 1]}"
                                      for f in range(frames) for j in range(17)]
        src.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.npz"
    code = main(["lift", str(src), "--out", str(out), "--image-size", "640", "480", "--checkpoint",
                 str(tiny_checkpoint), "--hypotheses", "2", "--steps", "1"])
    assert code == 0
    data = np.load(out)
    np.testing.assert_allclose(data["keypoints_2d"], expected, atol=1e-3)  # the format was mapped right
    assert data["pose_3d"].shape == (frames, 17, 3) and np.isfinite(data["pose_3d"]).all()


def test_unknown_format_writes_nothing(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "notes.json"
    src.write_text('{"hello": "world"}')
    out = tmp_path / "out.npz"
    code = main(["lift", str(src), "--out", str(out), "--image-size", "640", "480", "--checkpoint",
                 str(tiny_checkpoint)])
    assert code == 2 and not out.exists()
    assert "format" in capsys.readouterr().err


def test_outputs_are_all_or_nothing(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    import posediffusion.render

    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track(12), (1000, 1000))
    (tmp_path / "out.npz").write_bytes(b"previous result")

    def broken_render(*args, **kwargs):  # fails after the npz, json and csv were written
        raise ValueError("render failed")

    monkeypatch.setattr(posediffusion.render, "render_animation", broken_render)
    code = main(["lift", str(src), "--out", str(tmp_path / "out.npz"), "--json", str(tmp_path / "o.json"),
                 "--csv", str(tmp_path / "o.csv"), "--render", str(tmp_path / "o.gif"),
                 "--checkpoint", str(tiny_checkpoint), "--hypotheses", "1", "--steps", "1"])
    assert code == 2 and "render failed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.npz", "out.npz"]  # no new or temporary file
    assert (tmp_path / "out.npz").read_bytes() == b"previous result"  # the old output is untouched


def test_lift_keypoints_refuses_implausible_pixels(tiny_model):
    track = _track(6)
    with pytest.raises(ValueError, match="image size 10x10 cannot hold the keypoints"):
        lift_keypoints(track, (10, 10), tiny_model)
    wild = track.copy()
    wild[3, 13] = [1e9, 500.0]
    with pytest.raises(ValueError, match="1 keypoint.*more than one image size outside.*frame 3, joint LWr"):
        lift_keypoints(wild, (1000, 1000), tiny_model)
    with pytest.raises(ValueError, match="whole numbers"):
        lift_keypoints(track, (1000.5, 1000), tiny_model)


def test_device_is_checked_before_the_input_is_read(tmp_path):
    with pytest.raises(ValueError, match="--device 'banana'"):
        lift_file(tmp_path / "missing.npz", device="banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device 'cuda:0': CUDA is not available"):
            lift_file(tmp_path / "missing.npz", device="cuda:0")


def test_fps_and_input_frame_numbers_in_every_output(tmp_path, tiny_checkpoint, capsys):
    from tests.data.test_keypoints import source_points, write_coco_results

    src = write_coco_results(tmp_path / "coco.json", source_points(12, 17), list(range(10, 22)))
    out, js, csv = tmp_path / "out.npz", tmp_path / "out.json", tmp_path / "out.csv"
    base = ["lift", str(src), "--image-size", "640", "480", "--checkpoint", str(tiny_checkpoint),
            "--hypotheses", "1", "--steps", "1"]
    assert main(base + ["--out", str(out), "--json", str(js), "--csv", str(csv)]) == 0
    assert "input frames 10..21; fps 50 (ASSUMED" in capsys.readouterr().out
    data = np.load(out)
    assert float(data["fps"]) == 50.0 and bool(data["fps_assumed"]) and str(data["fps_source"]) == "assumed"
    assert int(data["first_frame"]) == 10 and data["frame_ids"].tolist() == list(range(10, 22))
    doc = json.loads(js.read_text())
    assert (doc["fps"], doc["fps_assumed"], doc["first_frame"]) == (50.0, True, 10)
    assert doc["frame_ids"] == list(range(10, 22))
    lines = csv.read_text().splitlines()
    assert lines[0] == ("frame,input_frame,joint,x,y,z,uncertainty,fps,fps_assumed,inferred,"
                        "scale,scale_method,height")
    assert lines[1].startswith("0,10,Hip,") and ",50,1,0," in lines[1] and lines[1].endswith(",prior,")
    assert lines[-1].startswith("11,21,")
    # --fps: used and not assumed
    assert main(base + ["--out", str(out), "--fps", "29.97"]) == 0
    data = np.load(out)
    assert np.isclose(float(data["fps"]), 29.97) and not bool(data["fps_assumed"])
    assert str(data["fps_source"]) == "--fps"
    # a file that states its fps
    npz = tmp_path / "kp.npz"
    save_keypoints_npz(npz, _track(12), (1000, 1000), fps=25)
    result = lift_file(npz, checkpoint=tiny_checkpoint, hypotheses=1, steps=1)
    assert (result.fps, result.fps_source, result.fps_assumed, result.first_frame) == (25.0, "file", False, 0)
    assert lift_file(npz, checkpoint=tiny_checkpoint, hypotheses=1, steps=1, fps=60).fps_source == "--fps"
    for bad in ("0", "nan", "-3"):
        assert main(base + ["--out", str(tmp_path / "x.npz"), "--fps", bad]) == 2
        assert f"--fps {float(bad)}" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("fmt", ["videopose3d", "detectron2"])
def test_lift_cli_on_videopose3d_and_detectron2_npz(tmp_path, tiny_checkpoint, fmt):
    from tests.data.test_keypoint_formats import write_detectron2_npz, write_vp3d_custom
    from tests.data.test_keypoints import COCO, expected_h36m, source_points

    pts = source_points(10, 17)
    if fmt == "videopose3d":
        src = write_vp3d_custom(tmp_path / "data_2d_custom_clip.npz", {"clip.mp4": pts})
    else:
        src = write_detectron2_npz(tmp_path / "clip.mp4.npz", [[p] for p in pts], [[0.9]] * len(pts))
    out = tmp_path / "out.npz"
    assert main(["lift", str(src), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                 "--hypotheses", "1", "--steps", "1"]) == 0
    data = np.load(out)
    np.testing.assert_allclose(data["keypoints_2d"], expected_h36m(pts, COCO), atol=1e-3)
    assert json.loads(str(data["settings"]))["format"] == fmt


def test_cli_person_and_all_people_on_two_crossing_people(tmp_path, tiny_checkpoint, capsys):
    from tests.data.test_tracking import BODY25, TORSO, layout, order, walker, write_openpose

    frames = 24
    a, b = walker(frames, 300, 12), walker(frames, 700, -12, seed=1)
    folder = write_openpose(tmp_path / "op", [[layout(p, BODY25, f) for p in order(f, [a, b])]
                                              for f in range(frames)])
    base = ["lift", str(folder), "--image-size", "1280", "720", "--checkpoint", str(tiny_checkpoint),
            "--hypotheses", "1", "--steps", "1"]
    assert main(base + ["--out", str(tmp_path / "b.npz"), "--person", "1"]) == 0
    data = np.load(tmp_path / "b.npz")
    np.testing.assert_allclose(data["keypoints_2d"][:, 0], b["mid_hip"], atol=10)  # track 1: right at first
    assert json.loads(str(data["settings"]))["track_id"] == 1
    out, js = tmp_path / "all.npz", tmp_path / "all.json"
    assert main(base + ["--out", str(out), "--json", str(js), "--all-people"]) == 0
    printed = capsys.readouterr().out
    assert "track 0: lifted 24 frames" in printed and "track 1: lifted 24 frames" in printed
    assert sorted(p.name for p in tmp_path.glob("all*")) == ["all_track0.json", "all_track0.npz",
                                                            "all_track1.json", "all_track1.npz"]
    for track, person in ((0, a), (1, b)):
        data = np.load(tmp_path / f"all_track{track}.npz")
        pelvis = data["keypoints_2d"][:, 0]
        np.testing.assert_allclose(pelvis, person["mid_hip"], atol=10)
        assert (np.linalg.norm(np.diff(pelvis, axis=0), axis=-1) <= TORSO).all()
        assert json.loads((tmp_path / f"all_track{track}.json").read_text())["settings"]["track_id"] == track
    assert main(base + ["--out", str(out), "--all-people", "--person", "0"]) == 2
    assert "--person 0 and --all-people" in capsys.readouterr().err


def test_never_seen_joints_are_lifted_and_marked_inferred_in_every_output(tmp_path, tiny_checkpoint, capsys):
    from posediffusion.data.body_prior import TEMPLATE_2D

    pixels = TEMPLATE_2D[None] * 0.35 + np.array([500.0, 400.0]) + np.arange(12)[:, None, None] * [2.0, 0.0]
    pixels[:, 16] = np.nan  # RWrist never seen
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, pixels, (1000, 1000))
    out, js, csv = tmp_path / "o.npz", tmp_path / "o.json", tmp_path / "o.csv"
    assert main(["lift", str(src), "--out", str(out), "--json", str(js), "--csv", str(csv), "--checkpoint",
                 str(tiny_checkpoint), "--hypotheses", "1", "--steps", "1"]) == 0
    assert "INFERRED from a body prior (not measured): RWrist" in capsys.readouterr().out
    data = np.load(out)
    assert data["inferred"].shape == (12, 17) and data["inferred"][:, 16].all()
    assert data["inferred"].sum() == 12
    assert data["filled"][:, 16].all() and np.isfinite(data["pose_3d"]).all()
    assert json.loads(str(data["settings"]))["inferred_joints"] == ["RWrist"]
    assert np.array(json.loads(js.read_text())["inferred"])[:, 16].all()
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    assert {r[2] for r in rows if r[9] == "1"} == {"RWrist"}  # the inferred column


def test_cli_never_seen_choices_are_the_library_methods():
    """commands/lift.py spells the choices out (posediffusion.lift imports torch; --help stays fast)."""
    import argparse

    from posediffusion.commands import lift as lift_command
    from posediffusion.lift import NEVER_SEEN_METHODS

    parser = argparse.ArgumentParser()
    lift_command.add_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "never_seen")
    assert tuple(action.choices) == NEVER_SEEN_METHODS


def test_cli_stride_sets_the_window_overlap(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track(30), (1000, 1000))  # tiny: 9-frame windows
    windows = {}
    for flags in ([], ["--stride", "9"]):
        out = tmp_path / f"out{len(flags)}.npz"
        assert main(["lift", str(src), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                     "--hypotheses", "1", "--steps", "1", *flags]) == 0
        settings = json.loads(str(np.load(out)["settings"]))
        windows[settings["stride"]] = settings["windows"]
    # default 9 // 2 = 4: starts 0, 4, ..., 20 and the last 21 (7 windows); 9: 0, 9, 18, 21 (4 windows)
    assert windows == {4: 7, 9: 4}
    capsys.readouterr()
    for bad, message in (("0", "--stride 0: must be at least 1"), ("10", "stride must be in [1, frames=9]")):
        out = tmp_path / f"bad{bad}.npz"
        assert main(["lift", str(src), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                     "--stride", bad]) == 2
        assert message in capsys.readouterr().err and not out.exists()
