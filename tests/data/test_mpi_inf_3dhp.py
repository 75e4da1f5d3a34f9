import numpy as np
import pytest

from posediffusion.data.mpi_inf_3dhp import load_3dhp
from posediffusion.skeleton import H36M_17, H36M_TO_MPI

MPI_NAMES = ["head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
             "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "pelvis", "spine", "head"]
# Written out by name, independently of skeleton.MPI_TO_H36M.
H36M_FROM_MPI_NAME = {"Hip": "pelvis", "RHip": "r_hip", "RKnee": "r_knee", "RAnkle": "r_ankle",
                      "LHip": "l_hip", "LKnee": "l_knee", "LAnkle": "l_ankle", "Spine": "spine",
                      "Thorax": "neck", "Neck/Nose": "head", "Head": "head_top", "LShoulder": "l_shoulder",
                      "LElbow": "l_elbow", "LWrist": "l_wrist", "RShoulder": "r_shoulder",
                      "RElbow": "r_elbow", "RWrist": "r_wrist"}


def _pose_mm(frames):
    """3DHP-order pose: joint j at (100 j, -50 j, 4000 + 10 j) mm, pelvis (14) at (1400, -700, 4140)."""
    j = np.arange(17.0)
    pose = np.stack([100 * j, -50 * j, 4000 + 10 * j], axis=-1)
    return np.repeat(pose[None], frames, axis=0)


def _kp_px(frames, value=(1024.0, 1024.0)):
    return np.tile(np.asarray(value), (frames, 17, 1))


@pytest.fixture
def folder(tmp_path):
    train = {
        "S1 Seq1": [{"0": {"data_2d": _kp_px(3, (2048.0, 512.0)), "data_3d": _pose_mm(3)},
                     "2": {"data_2d": _kp_px(3), "data_3d": _pose_mm(3)}}, 25],
        "S2 Seq2": [{"0": {"data_2d": _kp_px(2), "data_3d": _pose_mm(2)}}, 50],
    }
    valid = np.array([1, 0, 1, 1])
    kp_ts5 = _kp_px(4, (960.0, 540.0))
    pose_ts5 = _pose_mm(4)
    kp_ts5[1], pose_ts5[1] = np.nan, np.nan  # invalid frame with NaN: filled, not an error
    test = {
        "TS1": {"data_2d": _kp_px(2), "data_3d": _pose_mm(2), "valid": np.array([1, 1])},
        "TS5": {"data_2d": kp_ts5, "data_3d": pose_ts5, "valid": valid, "activity": np.array([1, 1, 2, 7])},
    }
    np.savez(tmp_path / "data_train_3dhp.npz", data=train)
    np.savez(tmp_path / "data_test_3dhp.npz", data=test)
    return tmp_path


def test_train_reorder_units_and_labels(folder):
    seqs = load_3dhp(folder, "train")
    assert [(s.subject, s.action, s.camera_id) for s in seqs] == [("S1", "Seq1", "0"), ("S1", "Seq1", "2"),
                                                                ("S2", "Seq2", "0")]
    seq = seqs[0]
    for i, name in enumerate(H36M_17.joints):
        j = MPI_NAMES.index(H36M_FROM_MPI_NAME[name])
        # (100 (j - 14), -50 (j - 14), 10 (j - 14)) mm relative to the pelvis, in metres.
        np.testing.assert_allclose(seq.pose_3d[:, i], np.tile([0.1 * (j - 14), -0.05 * (j - 14),
                                                               0.01 * (j - 14)], (3, 1)), atol=1e-6)
    np.testing.assert_allclose(seq.trajectory, np.tile([1.4, -0.7, 4.14], (3, 1)), atol=1e-6)
    # (2048, 512) on 2048 x 2048: (1, 512/2048*2 - 1) = (1, -0.5)
    np.testing.assert_allclose(seq.keypoints_2d[0, 0], [1.0, -0.5], atol=1e-6)
    assert seq.fps == 25.0 and seqs[2].fps == 50.0 and seq.valid.all()
    assert seq.camera["focal_length"][0] == pytest.approx(7.32506 / 10 * 2048)
    assert seq.pose_3d.dtype == np.float32


def test_test_split_intrinsics_valid_and_back_conversion(folder):
    ts1, ts5 = load_3dhp(folder, "test")
    assert (ts5.subject, ts5.action, ts5.camera_id) == ("TS5", "TS5", "")
    assert (ts5.camera["res_w"], ts5.camera["res_h"]) == (1920, 1080)
    assert ts5.camera["focal_length"] == pytest.approx([1683.983424] * 2)
    assert ts5.camera["center"] == pytest.approx([960.0, 540.0])
    assert ts1.camera["focal_length"] == pytest.approx([1500.172288] * 2)
    assert ts1.camera["center"] == pytest.approx([1024.0, 1024.0])
    np.testing.assert_array_equal(ts5.valid, [True, False, True, True])
    # (960, 540) on 1920 x 1080: (0, 540/1920*2 - 1080/1920) = (0, 0)
    np.testing.assert_allclose(ts5.keypoints_2d[[0, 2]], 0.0, atol=1e-6)
    # NaN on the invalid frame 1 is replaced by the next finite frame (2).
    np.testing.assert_array_equal(ts5.keypoints_2d[1], ts5.keypoints_2d[2])
    np.testing.assert_array_equal(ts5.pose_3d[1], ts5.pose_3d[2])
    np.testing.assert_array_equal(ts5.extra["activity"], [1, 1, 2, 7])
    # H36M_TO_MPI gives back the 3DHP-order pose relative to the pelvis, in mm.
    back_mm = ts5.pose_3d[0][list(H36M_TO_MPI)] * 1000.0
    np.testing.assert_allclose(back_mm, _pose_mm(1)[0] - _pose_mm(1)[0, 14], atol=1e-3)


def test_filters(folder):
    assert [s.camera_id for s in load_3dhp(folder, "train", subjects=["S1"], cameras=["2"])] == ["2"]
    assert [s.subject for s in load_3dhp(folder, "train", sequences=["S2 Seq2"])] == ["S2"]
    assert [s.action for s in load_3dhp(folder, "train", sequences=["Seq1"])] == ["Seq1", "Seq1"]
    assert [s.subject for s in load_3dhp(folder, "test", sequences=["TS5"])] == ["TS5"]


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "val"}, "split must be"),
    ({"subjects": ["S9"]}, r"unknown subjects \['S9'\]"),
    ({"sequences": ["Seq7"]}, r"unknown sequences \['Seq7'\]"),
    ({"cameras": ["3"]}, r"unknown cameras \['3'\]"),
    ({"split": "test", "sequences": ["TS7"]}, r"data_test_3dhp.npz: unknown sequences"),
    ({"split": "test", "cameras": ["0"]}, "one camera per sequence"),
])
def test_unknown_names(folder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_3dhp(folder, **kwargs)


@pytest.mark.parametrize("entry, message", [
    ({"data_2d": _kp_px(2), "data_3d": _pose_mm(3), "valid": np.ones(2)}, "3 frames, expected 2"),
    ({"data_2d": np.zeros((2, 16, 2)), "data_3d": _pose_mm(2), "valid": np.ones(2)}, "expected shape"),
    ({"data_2d": np.zeros((0, 17, 2)), "data_3d": np.zeros((0, 17, 3)), "valid": np.ones(0)}, "empty"),
    ({"data_2d": np.full((2, 17, 2), np.nan), "data_3d": _pose_mm(2), "valid": np.ones(2)}, "valid frames"),
    ({"data_2d": _kp_px(2), "data_3d": _pose_mm(2), "valid": np.ones(3)}, "'valid' has 3 frames"),
    ({"data_2d": _kp_px(2), "data_3d": _pose_mm(2)}, "'valid'"),
])
def test_bad_test_entries_name_file(tmp_path, entry, message):
    np.savez(tmp_path / "data_test_3dhp.npz", data={"TS2": entry})
    with pytest.raises(ValueError, match=message) as err:
        load_3dhp(tmp_path, "test")
    assert "data_test_3dhp.npz" in str(err.value)


def test_bad_train_layout_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_train_3dhp.npz"):
        load_3dhp(tmp_path)
    np.savez(tmp_path / "data_train_3dhp.npz", data={"S1 Seq1": {"0": {}}})
    with pytest.raises(ValueError, match=r"data_train_3dhp.npz: S1 Seq1: expected \[camera id"):
        load_3dhp(tmp_path)
