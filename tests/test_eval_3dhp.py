import json
import math

import h5py
import numpy as np
import pytest

from posediffusion import eval_3dhp, metrics
from posediffusion.cli import main
from posediffusion.skeleton import MPI_TO_H36M

ROOT = 14
DIRECTION = np.array([0.6, 0.8, 0.0])  # unit vector: an offset e * DIRECTION is an error of e mm


def _write_sequence(gt_dir, name, annot3, valid, activity, univ=None):
    """annot_data.mat exactly as h5py reads the MATLAB v7.3 file: (N, 1, 17, 3) etc."""
    n = len(annot3)
    folder = gt_dir / name
    folder.mkdir(parents=True)
    with h5py.File(folder / "annot_data.mat", "w") as fh:
        fh["annot2"] = np.zeros((n, 1, 17, 2))
        fh["annot3"] = annot3[:, None]
        fh["univ_annot3"] = (annot3 if univ is None else univ)[:, None]
        fh["valid_frame"] = np.asarray(valid, dtype=np.float64)[:, None]
        fh["activity_annotation"] = np.asarray(activity, dtype=np.float64)[:, None]
        fh["bb_crop"] = np.zeros((n, 4))


def _absolute_gt(rng, n):
    pose = rng.normal(scale=300.0, size=(n, 17, 3))
    return pose + np.array([100.0, 200.0, 4000.0])  # pelvis nowhere near 0: GT must be root-centred


def _predict(gt_abs, errors_mm):
    """Root-relative predictions whose every joint of frame f is errors_mm[f] from the GT."""
    rel = gt_abs - gt_abs[:, ROOT : ROOT + 1]
    return rel + np.asarray(errors_mm, dtype=float)[:, None, None] * DIRECTION


@pytest.fixture()
def dataset(tmp_path):
    """TS1: 4 frames (frame 2 invalid), TS5: 3 frames; per-frame errors chosen for hand computation."""
    rng = np.random.default_rng(0)
    gt1, gt5 = _absolute_gt(rng, 4), _absolute_gt(rng, 3)
    _write_sequence(tmp_path, "TS1", gt1, valid=[1, 1, 0, 1], activity=[1, 2, 3, 2])
    _write_sequence(tmp_path, "TS5", gt5, valid=[1, 1, 1], activity=[2, 2, 7])
    # errors stay off the 5 mm AUC grid so that rounding cannot move a frame across a threshold
    predictions = {"TS1": _predict(gt1, [102.0, 200.0, 999.0, 0.0]),
                   "TS5": _predict(gt5, [52.0, 52.0, 160.0])}
    return tmp_path, predictions


def test_load_test_annotations(dataset):
    gt_dir, _ = dataset
    ann = eval_3dhp.load_test_annotations(gt_dir)
    assert list(ann) == ["TS1", "TS5"]
    assert ann["TS1"].annot3.shape == (4, 17, 3) and ann["TS1"].annot2.shape == (4, 17, 2)
    np.testing.assert_array_equal(ann["TS1"].valid, [True, True, False, True])
    np.testing.assert_array_equal(ann["TS5"].activity, [2, 2, 7])


def test_sequence_activity_and_pooled_numbers(dataset):
    gt_dir, predictions = dataset
    res = eval_3dhp.evaluate_predictions(eval_3dhp.load_test_annotations(gt_dir), predictions)
    ts1, ts5 = res.sequences["TS1"], res.sequences["TS5"]
    # TS1 valid frames err 102, 200, 0: PCK 2/3; AUC thresholds passed 10, 0, 30 of 31; MPJPE 302/3
    assert ts1.num_frames == 3
    assert ts1.pck == pytest.approx(200 / 3)
    assert ts1.auc == pytest.approx(40 / 93 * 100)
    assert ts1.mpjpe == pytest.approx(302 / 3)
    # TS5 err 52, 52, 160: PCK 2/3; AUC 20 + 20 + 0 of 93; MPJPE 88
    assert ts5.pck == pytest.approx(200 / 3)
    assert ts5.auc == pytest.approx(40 / 93 * 100)
    assert ts5.mpjpe == pytest.approx(88.0)
    assert res.all.num_frames == 6
    assert res.all.pck == pytest.approx(400 / 6)
    assert res.all.auc == pytest.approx(80 / 186 * 100)
    assert res.all.mpjpe == pytest.approx(566 / 6)
    assert res.mean_of_sequences["mpjpe"] == pytest.approx((302 / 3 + 88) / 2)
    acts = res.activities
    assert list(acts) == list(eval_3dhp.ACTIVITIES.values())
    assert acts["Standing/Walking"].mpjpe == pytest.approx(102.0) and acts["Standing/Walking"].pck == 100.0
    assert acts["Exercising"].num_frames == 4  # errors 200, 0, 52, 52
    assert acts["Exercising"].pck == pytest.approx(75.0) and acts["Exercising"].mpjpe == pytest.approx(76.0)
    assert acts["Sitting"].num_frames == 0 and math.isnan(acts["Sitting"].pck)  # its only frame is invalid
    assert acts["Miscellaneous"].pck == 0.0


def test_joint_groups_and_pelvis_in_mpjpe(tmp_path):
    rng = np.random.default_rng(1)
    gt = _absolute_gt(rng, 2)
    _write_sequence(tmp_path, "TS2", gt, valid=[1, 1], activity=[1, 1])
    pred = _predict(gt, [0.0, 0.0])
    pred[:, [4, 7]] += 200.0 * DIRECTION  # both wrists wrong
    pred[:, ROOT] += 34.0 * DIRECTION  # pelvis error counts in MPJPE but not in PCK
    res = eval_3dhp.evaluate_predictions(eval_3dhp.load_test_annotations(tmp_path), {"TS2": pred})
    row = res.sequences["TS2"]
    assert row.group_pck["Wrist"] == 0.0 and row.group_pck["Elbow"] == 100.0
    assert row.pck == pytest.approx(12 / 14 * 100)
    assert row.group_auc["Wrist"] == 0.0 and row.group_auc["Head"] == pytest.approx(30 / 31 * 100)
    assert row.mpjpe == pytest.approx((400 + 34) / 17)
    np.testing.assert_allclose(row.joint_mpjpe[[4, 7, ROOT]], [200.0, 200.0, 34.0])


def test_tables_use_the_package_pck_and_auc():
    # The joint groups of the official tables are exactly the 14 PCK joints of metrics.py, and a row's
    # pooled PCK/AUC equal metrics.pck/auc on the same poses (equal joint count per frame).
    groups = sorted(j for group in eval_3dhp.JOINT_GROUPS.values() for j in group)
    assert groups == list(metrics.PCK_JOINTS_3DHP)
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(9, 17, 3)) * 300
    gt -= gt[:, ROOT:ROOT + 1]
    pred = gt + rng.normal(size=gt.shape) * 90
    row = eval_3dhp.score_row("x", np.linalg.norm(pred - gt, axis=-1))
    assert row.pck == pytest.approx(metrics.pck(pred, gt, joint_order="3dhp"))
    assert row.auc == pytest.approx(metrics.auc(pred, gt, joint_order="3dhp"))


def test_valid_only_predictions_and_errors(dataset):
    gt_dir, predictions = dataset
    ann = eval_3dhp.load_test_annotations(gt_dir)
    full = eval_3dhp.evaluate_predictions(ann, predictions)
    valid_only = dict(predictions, TS1=predictions["TS1"][ann["TS1"].valid])
    assert eval_3dhp.evaluate_predictions(ann, valid_only).all.auc == pytest.approx(full.all.auc)
    with pytest.raises(ValueError, match="TS1.*2 frames"):
        eval_3dhp.evaluate_predictions(ann, dict(predictions, TS1=predictions["TS1"][:2]))
    with pytest.raises(ValueError, match="missing.*TS5"):
        eval_3dhp.evaluate_predictions(ann, {"TS1": predictions["TS1"]})
    nan_pred = predictions["TS5"].copy()
    nan_pred[0, 3, 0] = np.nan
    with pytest.raises(ValueError, match="TS5.*NaN"):
        eval_3dhp.evaluate_predictions(ann, dict(predictions, TS5=nan_pred))
    with pytest.raises(ValueError, match="TS5.*17, 3"):
        eval_3dhp.evaluate_predictions(ann, dict(predictions, TS5=nan_pred[:, :16]))
    with pytest.raises(ValueError, match="annot_key"):
        eval_3dhp.evaluate_predictions(ann, predictions, annot_key="annot2")


def test_univ_annot3_selectable(tmp_path):
    rng = np.random.default_rng(2)
    gt = _absolute_gt(rng, 3)
    univ = gt * 0.9
    _write_sequence(tmp_path, "TS3", gt, valid=[1, 1, 1], activity=[4, 5, 6], univ=univ)
    pred = {"TS3": univ - univ[:, ROOT : ROOT + 1]}
    ann = eval_3dhp.load_test_annotations(tmp_path)
    assert eval_3dhp.evaluate_predictions(ann, pred, annot_key="univ_annot3").all.mpjpe == pytest.approx(0.0)
    assert eval_3dhp.evaluate_predictions(ann, pred).all.mpjpe > 1.0


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TS"):
        eval_3dhp.load_test_annotations(tmp_path)
    (tmp_path / "TS1").mkdir()
    with h5py.File(tmp_path / "TS1" / "annot_data.mat", "w") as fh:
        fh["annot3"] = np.zeros((2, 1, 17, 3))
    with pytest.raises(ValueError, match="TS1.*annot_data.mat.*missing"):
        eval_3dhp.load_test_annotations(tmp_path)


def test_write_report(dataset, tmp_path):
    gt_dir, predictions = dataset
    res = eval_3dhp.evaluate_predictions(eval_3dhp.load_test_annotations(gt_dir), predictions)
    out = tmp_path / "report"
    eval_3dhp.write_report(res, out)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sequences"]) == {"TS1", "TS5"}
    assert summary["sequences"]["TS1"]["pck"] == pytest.approx(200 / 3)
    assert summary["all"]["mpjpe"] == pytest.approx(566 / 6)
    assert summary["activities"]["Sitting"]["pck"] is None
    assert summary["mean_of_sequences"]["auc"] == pytest.approx(40 / 93 * 100)
    seq_lines = (out / "sequencewise.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in seq_lines] == ["name", "TS1", "TS5", "All"]
    assert len((out / "activitywise.csv").read_text().splitlines()) == 1 + 7 + 1
    assert sorted(p.name for p in out.iterdir()) == ["activitywise.csv", "sequencewise.csv", "summary.json"]


def test_cli(dataset, tmp_path, capsys):
    gt_dir, predictions = dataset
    h36m_metres = {k: v[:, list(MPI_TO_H36M)] / 1000.0 for k, v in predictions.items()}
    np.savez(tmp_path / "pred.npz", **h36m_metres)
    out = tmp_path / "cli_out"
    rc = main(["eval-3dhp", "--gt-dir", str(gt_dir), "--predictions", str(tmp_path / "pred.npz"),
               "--out", str(out), "--joint-order", "h36m", "--unit", "m"])
    assert rc == 0
    assert "Standing/Walking" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["all"]["pck"] == pytest.approx(400 / 6)
    rc = main(["eval-3dhp", "--gt-dir", str(gt_dir), "--predictions", str(tmp_path / "missing.npz"),
               "--out", str(out)])
    assert rc == 2 and "missing.npz" in capsys.readouterr().err


def test_no_valid_frame_is_an_error_not_nan(tmp_path):
    rng = np.random.default_rng(3)
    gt = _absolute_gt(rng, 3)
    _write_sequence(tmp_path, "TS2", gt, valid=[0, 0, 0], activity=[1, 1, 1])
    ann = eval_3dhp.load_test_annotations(tmp_path)
    with pytest.raises(ValueError, match=r"no valid frame to score.*\['TS2'\]"):
        eval_3dhp.evaluate_predictions(ann, {"TS2": gt - gt[:, ROOT : ROOT + 1]})


def test_implausible_units_and_bad_arrays(dataset, tmp_path, capsys):
    gt_dir, predictions = dataset
    mm = {k: v for k, v in predictions.items()}
    assert 100 < eval_3dhp.pose_extent_mm(mm) < 5000
    eval_3dhp.check_unit(mm, "mm", "pred.npz")  # plausible
    with pytest.raises(ValueError, match="pred.npz: with --unit m the poses reach a median .* m .*--unit mm"):
        eval_3dhp.check_unit({k: v * 1000 for k, v in mm.items()}, "m", "pred.npz")
    with pytest.raises(ValueError, match="pred.npz: with --unit mm .* mm from the pelvis.*--unit m\\)"):
        eval_3dhp.check_unit({k: v / 1000 for k, v in mm.items()}, "mm", "pred.npz")
    eval_3dhp.check_unit({"TS1": np.zeros((3, 17, 3))}, "mm", "zeros")  # all zero is not a unit mistake
    with pytest.raises(ValueError, match="TS1: prediction must be a numeric"):
        eval_3dhp.check_prediction_array("TS1", np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"TS1: prediction must be \(F, 17, 3\)"):
        eval_3dhp.predictions_from_h36m({"TS1": np.zeros((3, 16, 3))})
    # through the CLI: millimetre data scored as metres is refused before anything is written
    np.savez(tmp_path / "pred.npz", **mm)
    out = tmp_path / "scores"
    assert main(["eval-3dhp", "--gt-dir", str(gt_dir), "--predictions", str(tmp_path / "pred.npz"),
                 "--out", str(out), "--unit", "m"]) == 2
    assert "--unit mm" in capsys.readouterr().err and not out.exists()


def test_report_files_are_written_together(dataset, tmp_path):
    gt_dir, predictions = dataset
    res = eval_3dhp.evaluate_predictions(eval_3dhp.load_test_annotations(gt_dir), predictions)
    out = tmp_path / "report"
    (out / "summary.json").mkdir(parents=True)  # the third file cannot be written
    with pytest.raises(ValueError, match="summary.json: is a folder"):
        eval_3dhp.write_report(res, out)
    assert [p.name for p in out.iterdir()] == ["summary.json"]  # neither CSV, no temporary file
