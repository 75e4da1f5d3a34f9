import json
import logging

import numpy as np
import pytest

from posediffusion.data.h36m import action_group, bundled_cameras_path, load_h36m
from tests.helpers import SHARED_CAMERAS

LEFT, RIGHT = [4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]
# Rotation by +90 degrees about world Z, so X_cam = R^T (X - T) is easy to do by hand.
ROT_Z90 = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]


def _camera(T, res_w=1000, res_h=1000, R=None):
    return {"R": R or np.eye(3).tolist(), "T": list(T), "focal_length": [1000.0, 1000.0],
            "center": [500.0, 500.0], "radial_distortion": [0.0, 0.0, 0.0],
            "tangential_distortion": [0.0, 0.0], "res_w": res_w, "res_h": res_h}


def _write_cameras(path, subjects=("S1", "S9")):
    cams = {"c0": _camera([0.0, 0.0, -1.0], R=ROT_Z90), "c1": _camera([1.0, 0.0, 0.0], res_w=1000, res_h=500)}
    path.write_text(json.dumps({"camera_ids": ["c0", "c1"], "subjects": {s: cams for s in subjects}}))
    return path


def _write_dataset(folder, pos3d, pos2d, name="toy", keypoints="gt", metadata=None):
    meta = {"num_joints": 17, "keypoints_symmetry": [LEFT, RIGHT]} if metadata is None else metadata
    np.savez(folder / f"data_3d_{name}.npz", positions_3d=pos3d)
    np.savez(folder / f"data_2d_{name}_{keypoints}.npz", positions_2d=pos2d, metadata=meta)


def _pose(frames, joints=17, value=0.0):
    return np.full((frames, joints, 3), value)


@pytest.fixture
def toy(tmp_path):
    """S1 'Walking 1' (3 frames) and S9 'TakingPhoto' (2 frames), two cameras each."""
    world = _pose(3)
    world[:, 0] = [1.0, 2.0, 3.0]  # pelvis
    world[:, 3] = [1.0, 2.0, 2.0]  # right ankle, 1 m below the pelvis
    world[1] += [0.5, 0.0, 0.0]
    kp = np.zeros((3, 17, 2))
    kp[:, 0] = [500.0, 250.0]
    pos3d = {"S1": {"Walking 1": world}, "S9": {"TakingPhoto": _pose(2, 32, 0.1)}}
    pos2d = {"S1": {"Walking 1": [kp, kp + 100.0]}, "S9": {"TakingPhoto": [np.zeros((2, 17, 2))] * 2}}
    _write_dataset(tmp_path, pos3d, pos2d)
    return tmp_path, _write_cameras(tmp_path / "cams.json")


def test_world_to_camera_and_normalisation_hand_values(toy):
    folder, cams = toy
    seqs = load_h36m(folder, name="toy", subjects=["S1"], cameras=cams)
    assert [(s.subject, s.action, s.camera_id) for s in seqs] == [("S1", "Walking 1", "c0"),
                                                                ("S1", "Walking 1", "c1")]
    c0, c1 = seqs
    # c0: X - T = (1, 2, 4); R^T = [[0,1,0],[-1,0,0],[0,0,1]] -> (2, -1, 4).
    np.testing.assert_allclose(c0.trajectory[0], [2.0, -1.0, 4.0], atol=1e-6)
    # frame 1 pelvis moved +0.5 m along world x -> camera -y.
    np.testing.assert_allclose(c0.trajectory[1], [2.0, -1.5, 4.0], atol=1e-6)
    # ankle 1 m below in world z; camera z axis = world z here.
    np.testing.assert_allclose(c0.pose_3d[0, 3], [0.0, 0.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(c0.pose_3d[:, 0], 0.0, atol=1e-7)
    # c1: R = I, T = (1, 0, 0) -> pelvis (0, 2, 3).
    np.testing.assert_allclose(c1.trajectory[0], [0.0, 2.0, 3.0], atol=1e-6)
    # u/w*2-1, v/w*2-h/w: (500, 250) on 1000x1000 -> (0, -0.5); (600, 350) on 1000x500 -> (0.2, 0.2).
    np.testing.assert_allclose(c0.keypoints_2d[0, 0], [0.0, -0.5], atol=1e-6)
    np.testing.assert_allclose(c1.keypoints_2d[0, 0], [0.2, 0.2], atol=1e-6)
    assert c0.keypoints_2d.dtype == np.float32 and c0.pose_3d.dtype == np.float32
    assert c0.camera["res_h"] == 1000 and c1.camera["res_h"] == 500 and c0.valid.all()
    assert c0.action_group == "Walking" and c0.fps == 50.0


def test_32_joints_reduced_and_action_groups(toy):
    folder, cams = toy
    world = np.random.default_rng(0).normal(size=(2, 32, 3))
    keep = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
    pos2d = {"S9": {"TakingPhoto 1": [np.zeros((2, 17, 2))] * 2}}
    _write_dataset(folder, {"S9": {"TakingPhoto 1": world}}, pos2d)
    (seq, _) = load_h36m(folder, name="toy", cameras=cams)
    expected = world[:, keep] - world[:, :1]
    expected[..., :2] = expected[..., [1, 0]] * [1, -1]  # R^T of a +90 degree z rotation: (x, y) -> (y, -x)
    np.testing.assert_allclose(seq.pose_3d, expected, atol=1e-6)
    assert seq.action_group == "Photo"


@pytest.mark.parametrize("take, group", [
    ("Walking 1", "Walking"), ("Walking", "Walking"), ("TakingPhoto", "Photo"), ("TakingPhoto 1", "Photo"),
    ("Photo 1", "Photo"), ("WalkingDog", "WalkDog"), ("WalkDog 1", "WalkDog"),
    ("SittingDown 2", "SittingDown"), ("WalkTogether 1", "WalkTogether"), ("cmu_walk", "cmu_walk"),
])
def test_action_group(take, group):
    assert action_group(take) == group


def test_action_filter_by_group_and_take(toy):
    folder, cams = toy
    photo = load_h36m(folder, name="toy", actions=["Photo"], cameras=cams)
    assert {s.action for s in photo} == {"TakingPhoto"}
    assert len(load_h36m(folder, name="toy", actions=["Walking 1"], cameras=cams)) == 2


def test_trim_to_shorter_and_log(tmp_path, caplog):
    cams = _write_cameras(tmp_path / "cams.json")
    views = [np.zeros((7, 17, 2)), np.zeros((4, 17, 2))]
    _write_dataset(tmp_path, {"S1": {"a": _pose(5)}}, {"S1": {"a": views}})
    with caplog.at_level(logging.INFO, logger="posediffusion.data.h36m"):
        seqs = load_h36m(tmp_path, name="toy", cameras=cams)
    assert [s.num_frames for s in seqs] == [5, 4]
    assert [len(s.pose_3d) for s in seqs] == [5, 4]
    assert "trimmed" in caplog.text


def test_mocap_layout_with_detections(tmp_path):
    """prepare mocap: (F, 17, 3) metres, pseudo-subjects, motion names, a `det` 2D file with fps."""
    cams = _write_cameras(tmp_path / "cams.json", subjects=("S9", "S11"))
    meta = {"num_joints": 17, "keypoints_symmetry": [LEFT, RIGHT], "fps": 25, "camera_ids": ["c1", "c0"]}
    kp = [np.full((4, 17, 2), 500.0), np.full((4, 17, 2), 250.0)]
    _write_dataset(tmp_path, {"S11": {"jump_03": _pose(4, 17, 0.2)}}, {"S11": {"jump_03": kp}},
                   name="cmu", keypoints="det", metadata=meta)
    seqs = load_h36m(tmp_path, name="cmu", keypoints="det", cameras=cams)
    assert [s.camera_id for s in seqs] == ["c1", "c0"]  # the 2D file's own camera order wins
    assert seqs[0].camera["res_h"] == 500 and seqs[0].fps == 25.0
    np.testing.assert_allclose(seqs[0].keypoints_2d[0, 0], [0.0, 0.5], atol=1e-6)  # 500/1000*2-1, 1-0.5
    assert seqs[0].action_group == "jump_03" and seqs[0].extra["keypoints"] == "det"


# VideoPose3D's 32-joint Human3.6M skeleton (common/h36m_dataset.py joints_left / joints_right) and the
# 17 joints kept from it, written out from docs/formats.md.
LEFT_32 = [6, 7, 8, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23]
RIGHT_32 = [1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29, 30, 31]
KEPT_32 = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]


def test_32_joint_2d_is_reduced_to_17(tmp_path):
    cams = _write_cameras(tmp_path / "cams.json")
    frames = 3
    kp32 = np.zeros((frames, 32, 2))
    kp32[..., 0] = 10.0 * np.arange(32) + np.arange(frames)[:, None]  # every joint and frame distinct
    kp32[..., 1] = 5.0 * np.arange(32) + 100.0
    world32 = np.tile(np.arange(32)[None, :, None] * 0.01, (frames, 1, 3))
    meta = {"num_joints": 32, "keypoints_symmetry": [LEFT_32, RIGHT_32]}
    _write_dataset(tmp_path, {"S1": {"a": world32}}, {"S1": {"a": [kp32, kp32 + 1.0]}}, metadata=meta)
    seqs = load_h36m(tmp_path, name="toy", cameras=cams)
    assert [s.keypoints_2d.shape for s in seqs] == [(frames, 17, 2)] * 2
    for seq, offset in zip(seqs, (0.0, 1.0), strict=True):
        w, h = seq.camera["res_w"], seq.camera["res_h"]
        kept_px = kp32[:, KEPT_32] + offset  # (F, 17, 2) pixels
        expected = np.stack([kept_px[..., 0] / w * 2 - 1, kept_px[..., 1] / w * 2 - h / w], axis=-1)
        np.testing.assert_allclose(seq.keypoints_2d, expected, atol=1e-6)
    # the 3D of the same file layout goes through the same 17 indices
    x_world = np.arange(32)[KEPT_32] * 0.01
    np.testing.assert_allclose(seqs[1].pose_3d[0, :, 0], x_world - x_world[0], atol=1e-6)  # c1: R = I


def test_32_joint_2d_metadata_is_checked(tmp_path):
    pos2d = {"S1": {"a": [np.zeros((3, 32, 2))] * 2}}
    swapped = {"num_joints": 32, "keypoints_symmetry": [RIGHT_32, LEFT_32]}
    with pytest.raises(ValueError, match="data_2d_toy_gt.npz: keypoints_symmetry"):
        _bad(tmp_path, {"S1": {"a": _pose(3, 32)}}, pos2d, metadata=swapped)()
    with pytest.raises(ValueError, match="num_joints=33, expected 17 or 32"):
        _bad(tmp_path, {"S1": {"a": _pose(3, 32)}}, pos2d, metadata={"num_joints": 33})()
    with pytest.raises(ValueError, match=r"expected shape \(F, 17, 2\)"):  # metadata says 17, arrays 32
        _bad(tmp_path, {"S1": {"a": _pose(3, 32)}}, pos2d, metadata={"num_joints": 17})()


def test_default_cameras_are_bundled_h36m(tmp_path):
    kp = [np.tile([500.0, 501.0], (2, 17, 1))] * 4
    _write_dataset(tmp_path, {"S1": {"Posing": _pose(2, 17, 1.0)}}, {"S1": {"Posing": kp}}, name="h36m")
    seqs = load_h36m(tmp_path)
    assert [s.camera_id for s in seqs] == ["54138969", "55011271", "58860488", "60457274"]
    cam = seqs[0].camera
    assert (cam["res_w"], cam["res_h"]) == (1000, 1002)
    # v / w * 2 - h / w = 501 / 1000 * 2 - 1002 / 1000 = 0
    np.testing.assert_allclose(seqs[0].keypoints_2d[0, 0], [0.0, 0.0], atol=1e-6)
    R, T = np.asarray(cam["R"]), np.asarray(cam["T"])
    expected = R.T @ (np.array([1.0, 1.0, 1.0]) - T)
    np.testing.assert_allclose(seqs[0].trajectory[0], expected, atol=1e-5)


@pytest.mark.skipif(not SHARED_CAMERAS.is_file(), reason="../shared/data not present")
def test_bundled_cameras_equal_shared_copy():
    shared = json.loads(SHARED_CAMERAS.read_text())
    assert json.loads(bundled_cameras_path().read_text()) == shared


def _bad(tmp_path, pos3d, pos2d, metadata=None):
    cams = _write_cameras(tmp_path / "cams.json")
    _write_dataset(tmp_path, pos3d, pos2d, metadata=metadata)
    return lambda **kw: load_h36m(tmp_path, name="toy", cameras=cams, **kw)


GOOD_2D = [np.zeros((3, 17, 2))] * 2


@pytest.mark.parametrize("pos3d, pos2d, message", [
    ({"S1": {"a": _pose(3, 16)}}, {"S1": {"a": GOOD_2D}}, "expected shape"),
    ({"S1": {"a": _pose(3)}}, {"S1": {"a": [np.zeros((3, 16, 2))] * 2}}, "expected shape"),
    ({"S1": {"a": _pose(0)}}, {"S1": {"a": GOOD_2D}}, "empty"),
    ({"S1": {"a": _pose(3, 17, np.nan)}}, {"S1": {"a": GOOD_2D}}, "NaN"),
    ({"S1": {"a": _pose(3)}}, {"S1": {"a": [np.full((3, 17, 2), np.inf)] * 2}}, "NaN or inf"),
    ({"S1": {"a": _pose(3, 17, 1500.0)}}, {"S1": {"a": GOOD_2D}}, "metres"),
    ({"S1": {"a": _pose(3)}}, {"S1": {"a": GOOD_2D[:1]}}, "1 camera views, expected 2"),
    ({"S1": {"a": _pose(3)}}, {"S1": {"b": GOOD_2D}}, "not in the 2D file"),
    ({"S1": {"a": _pose(3)}}, {"S9": {"a": GOOD_2D}}, "not in the 2D file"),
    ({"S2": {"a": _pose(3)}}, {"S2": {"a": GOOD_2D}}, "no cameras for subject 'S2'"),
])
def test_bad_input_names_file(tmp_path, pos3d, pos2d, message):
    load = _bad(tmp_path, pos3d, pos2d)
    with pytest.raises(ValueError, match=message) as err:
        load()
    assert "data_3d_toy.npz" in str(err.value) or "data_2d_toy_gt.npz" in str(err.value) or \
        "cams.json" in str(err.value)


def test_unknown_names_and_layouts(tmp_path):
    load = _bad(tmp_path, {"S1": {"a": _pose(3)}}, {"S1": {"a": GOOD_2D}})
    with pytest.raises(ValueError, match=r"data_3d_toy.npz: unknown subjects \['S7'\]"):
        load(subjects=["S1", "S7"])
    with pytest.raises(ValueError, match=r"unknown actions \['Eating'\]"):
        load(actions=["a", "Eating"])
    with pytest.raises(FileNotFoundError, match="data_2d_toy_cpn.npz"):
        load(keypoints="cpn")
    coco = {"num_joints": 17, "keypoints_symmetry": [[1, 3, 5], [2, 4, 6]]}
    load = _bad(tmp_path, {"S1": {"a": _pose(3)}}, {"S1": {"a": GOOD_2D}}, metadata=coco)
    with pytest.raises(ValueError, match="data_2d_toy_gt.npz: keypoints_symmetry"):
        load()
    np.savez(tmp_path / "data_3d_toy.npz", poses=np.zeros(3))
    with pytest.raises(ValueError, match="data_3d_toy.npz: no 'positions_3d' key"):
        load()
    (tmp_path / "data_3d_toy.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="data_3d_toy.npz: cannot read npz"):
        load()


def test_camera_ids_keep_only_those_views(toy):
    folder, cams = toy
    every = load_h36m(folder, name="toy", cameras=cams)
    only = load_h36m(folder, name="toy", cameras=cams, camera_ids=["c1"])
    assert [s.camera_id for s in only] == ["c1", "c1"]
    kept = [s for s in every if s.camera_id == "c1"]
    assert all(np.array_equal(a.keypoints_2d, b.keypoints_2d) for a, b in zip(only, kept, strict=True))
    with pytest.raises(ValueError, match=r"cameras \['nope'\]; cameras: \['c0', 'c1'\]"):
        load_h36m(folder, name="toy", cameras=cams, camera_ids=["nope"])
