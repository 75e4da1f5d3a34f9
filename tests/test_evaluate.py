import json
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from posediffusion.checkpoint import save_checkpoint
from posediffusion.cli import main
from posediffusion.data.sequence import Sequence
from posediffusion.evaluate import (
    EvalConfig,
    Evaluation,
    ProtocolAccumulator,
    aggregation_labels,
    export_3dhp,
    predict_sequences,
)
from posediffusion.skeleton import H36M_TO_MPI


class StubLifter(torch.nn.Module):
    """Answers (x, y, k + 10 h) for every joint: a per-frame function of the input, so merging is exact."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(model=SimpleNamespace(frames=frames))
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def sample(self, x2d, num_hypotheses, steps, flip, generator, return_all_steps, eta):
        self.calls.append(x2d.shape[0])
        b, t, j, _ = x2d.shape
        k = torch.arange(steps, dtype=x2d.dtype).view(steps, 1, 1, 1, 1, 1)
        h = torch.arange(num_hypotheses, dtype=x2d.dtype).view(1, 1, num_hypotheses, 1, 1, 1)
        depth = (k + 10 * h).expand(steps, b, num_hypotheses, t, j, 1)
        xy = x2d[None, :, None].expand(steps, b, num_hypotheses, t, j, 2)
        return torch.cat([xy, depth], dim=-1)  # (K, B, H, T, J, 3)


def test_predict_sequences_merges_windows_and_batches_across_sequences():
    rng = np.random.default_rng(0)
    sequences = [Sequence(rng.normal(size=(f, 17, 2)).astype(np.float32)) for f in (20, 5, 13)]
    stub = StubLifter(frames=9)
    out = dict(predict_sequences(stub, sequences, hypotheses=2, steps=3, flip=True, stride=4, batch_size=4,
                                 generator=torch.Generator()))
    # windows: F=20 -> starts 0,4,8,11; F=5 -> 0 (padded); F=13 -> 0,4 => 7 windows in calls of <= 4
    assert stub.calls == [4, 3]
    for i, seq in enumerate(sequences):
        hyps = out[i]
        assert hyps.shape == (3, 2, seq.num_frames, 17, 3)
        expected_xy = torch.from_numpy(seq.keypoints_2d).expand(3, 2, -1, -1, -1)
        assert torch.allclose(hyps[..., :2], expected_xy, atol=1e-6)
        assert hyps[2, 1, :, :, 2].eq(12.0).all()  # step k=2, hypothesis h=1 -> 2 + 10


def test_predict_sequences_passes_the_pairing_only_when_asked():
    seen = []

    class PairingStub(StubLifter):
        def sample(self, x2d, num_hypotheses, steps, flip, generator, return_all_steps, eta, **options):
            seen.append(options)
            return super().sample(x2d, num_hypotheses, steps, flip, generator, return_all_steps, eta)

    sequences = [Sequence(np.zeros((9, 17, 2), np.float32))]
    for antithetic in (None, False, True):
        list(predict_sequences(PairingStub(frames=9), sequences, hypotheses=2, steps=1, flip=False,
                               stride=None, batch_size=4, generator=torch.Generator(), antithetic=antithetic))
    assert seen == [{}, {"antithetic": False}, {"antithetic": True}]


def test_protocol_means_frames_per_action_then_actions():
    acc = ProtocolAccumulator(("mpjpe", "mpjve"))
    gt = torch.zeros(3, 17, 3)
    offsets = torch.tensor([0.010, 0.020, 0.020])  # metres along x, per frame
    pred = gt.clone()
    pred[..., 0] += offsets[:, None]
    acc.add("P-Agg", "Walking", torch.stack([pred, gt]), gt, torch.ones(3, dtype=torch.bool))
    sit = torch.zeros(2, 17, 3)
    sit[0, :, 0], sit[1, :, 0] = 0.040, 0.100  # the second frame is invalid
    acc.add("P-Agg", "Sitting", torch.stack([sit, sit]), torch.zeros(2, 17, 3), torch.tensor([True, False]))
    results = acc.results()["P-Agg"]
    walking = (10 + 20 + 20) / 3
    assert results["mpjpe"]["per_action"]["Walking"] == pytest.approx([walking, 0.0])
    assert results["mpjpe"]["per_action"]["Sitting"] == pytest.approx([40.0, 40.0])
    assert results["mpjpe"]["per_step"] == pytest.approx([(walking + 40) / 2, 20.0])  # not pooled
    assert results["mpjpe"]["final"] == pytest.approx(20.0)
    # velocity: Walking |20-10|, |20-20| -> 5 mm; Sitting has no pair of valid frames
    assert results["mpjve"]["per_action"] == {"Walking": pytest.approx([5.0, 0.0])}


def test_labels_mark_oracles_and_ground_truth_root():
    config = EvalConfig(checkpoint="x", root_sources=("estimated", "ground_truth", "weak_perspective"))
    labels = [label for label, _, _ in aggregation_labels(config)]
    assert labels == ["P-Agg", "J-Agg (estimated root)", "J-Agg (GT root)", "J-Agg (weak perspective)",
                      "J-Best (ORACLE)", "P-Best (ORACLE)"]
    with pytest.raises(ValueError, match="unknown aggregation"):
        EvalConfig(checkpoint="x", root_sources=("gt",))


def test_export_3dhp_writes_mm_3dhp_order_root_relative(tmp_path):
    pose = np.random.default_rng(1).normal(size=(6, 17, 3)).astype(np.float32)
    pose -= pose[:, :1]
    seq = Sequence(np.zeros((6, 17, 2), np.float32), pose_3d=pose, subject="TS3", action="TS3")
    evaluation = Evaluation({}, {"P-Agg": {seq.name: pose}, "J-Best (ORACLE)": {seq.name: pose}}, {}, [seq])
    written = export_3dhp(evaluation, tmp_path)
    assert set(written) == {"P-Agg", "PRED"}  # oracles are never exported
    with np.load(tmp_path / "PRED.npz") as npz:
        assert npz.files == ["TS3"]
        exported = npz["TS3"]
    assert exported.shape == (6, 17, 3)
    for h36m_joint, mpi_joint in [(0, 14), (10, 0), (9, 16), (13, 7), (3, 10)]:  # docs/formats.md table
        assert np.allclose(exported[:, mpi_joint], pose[:, h36m_joint] * 1000, atol=1e-3)
    assert np.abs(exported[:, 14]).max() == 0.0


# --------------------------------------------------------------- 3DHP through the command line


def _camera_frame_pose(frames: int, phase: float) -> np.ndarray:
    """(F, 17, 3) mm, Human3.6M order, camera frame (y down), ~4 m in front of the camera."""
    t = np.arange(frames)[:, None]
    base = np.array([[0, 0], [-100, 0], [-100, 420], [-100, 820], [100, 0], [100, 420], [100, 820],
                     [0, -230], [0, -480], [0, -580], [0, -700], [170, -450], [170, -180], [170, 70],
                     [-170, -450], [-170, -180], [-170, 70]], dtype=np.float64)
    pose = np.zeros((frames, 17, 3))
    pose[..., 0] = base[:, 0] + 50 * np.sin(0.2 * t + phase)
    pose[..., 1] = base[:, 1]
    pose[..., 2] = 4000 + 30 * np.cos(0.3 * t + phase)
    return pose


def _write_3dhp(tmp_path):
    from posediffusion.camera import project_pinhole
    from posediffusion.data.mpi_inf_3dhp import camera_for

    data, gt_dir = {}, tmp_path / "gt"
    for name, frames in (("TS1", 23), ("TS5", 14)):
        pose_mpi = _camera_frame_pose(frames, len(data))[:, list(H36M_TO_MPI)]  # 3DHP joint order
        cam = camera_for(name)
        px = project_pinhole(pose_mpi, cam["focal_length"], cam["center"])
        valid = np.ones(frames)
        valid[3] = 0
        data[name] = {"data_2d": px, "data_3d": pose_mpi, "valid": valid}
        (gt_dir / name).mkdir(parents=True)
        with h5py.File(gt_dir / name / "annot_data.mat", "w") as fh:
            fh["annot2"], fh["annot3"] = px[:, None], pose_mpi[:, None]
            fh["univ_annot3"] = pose_mpi[:, None]
            fh["valid_frame"], fh["activity_annotation"] = valid[:, None], np.full((frames, 1), 2.0)
    np.savez(tmp_path / "data_test_3dhp.npz", data=data)
    return gt_dir


def test_evaluate_3dhp_exports_and_scores_with_the_official_protocol(tmp_path, capsys, tiny_model):
    from posediffusion.config import TrainConfig

    gt_dir = _write_3dhp(tmp_path)
    run = TrainConfig.from_dict({"preset": "tiny", "data": {"dataset": "3dhp", "data_dir": str(tmp_path)}})
    save_checkpoint(tmp_path / "run" / "last", tiny_model, run_config=run.to_dict(),
                    metadata={"kind": "last", "preset": "tiny", "selection": {"split": "none"}})
    out = tmp_path / "eval"
    argv = ["evaluate", "-c", str(tmp_path / "run"), "--gt-dir", str(gt_dir), "-num_proposals", "2",
            "-sampling_timesteps", "2", "--p2", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "PCK" in printed and "P-Agg" in printed

    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["data"]["dataset"] == "3dhp" and report["settings"]["frames_scored"] == 35
    assert report["settings"]["select_on_test"] is False
    official = report["3dhp_official"]["P-Agg"]
    assert official["sequences"] == ["TS1", "TS5"] and official["annot_key"] == "annot3"
    # independent recomputation of the official MPJPE from the exported file
    with np.load(out / "PRED.npz") as npz:
        per_sequence = []
        for name, frames in (("TS1", 23), ("TS5", 14)):
            pred = npz[name]
            assert pred.shape == (frames, 17, 3) and np.abs(pred[:, 14]).max() == 0
            gt = _camera_frame_pose(frames, 0 if name == "TS1" else 1)[:, list(H36M_TO_MPI)]
            gt -= gt[:, 14:15]
            keep = np.arange(frames) != 3
            per_sequence.append(np.linalg.norm(pred[keep] - gt[keep], axis=-1).mean())
    assert official["mean_of_sequences"]["mpjpe"] == pytest.approx(np.mean(per_sequence), rel=1e-4)
    # the protocol table (per sequence, then mean) is the same number by another code path
    assert report["results"]["P-Agg"]["mpjpe"]["final"] == pytest.approx(np.mean(per_sequence), rel=1e-4)
    assert (out / "3dhp_PRED_p_agg" / "summary.json").is_file()


def test_evaluate_rejects_bad_requests(tmp_path):
    assert main(["evaluate", "-c", str(tmp_path / "missing")]) == 2
    assert main(["evaluate"]) == 2  # no checkpoint given


def test_help_lists_evaluation_flags(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    for flag in ("--checkpoint", "--p2", "--root-source", "--max-frames-per-sequence", "--gt-dir",
                 "--render"):
        assert flag in out, flag


def test_save_predictions_writes_a_documented_layout_another_tool_can_score(tmp_path, tiny_checkpoint,
                                                                             synthetic_dataset):
    """The npz reads without pickle, its P-Agg rows score to the report's MPJPE, cameras filter at load."""
    from posediffusion.cli import main
    from posediffusion.metrics import mpjpe

    data_dir, name = synthetic_dataset
    out = tmp_path / "pred.npz"
    argv = ["evaluate", "-c", str(tiny_checkpoint), "-d", name, "--data-dir", str(data_dir), "-k", "gt",
            "-num_proposals", "2", "-sampling_timesteps", "1", "--aggregations", "p-agg,j-agg",
            "--camera-ids", "54138969", "--out", str(tmp_path / "eval"), "--save-predictions", str(out),
            "--save-hypotheses"]
    assert main(argv) == 0
    with np.load(out, allow_pickle=False) as npz:
        files = {k: npz[k] for k in npz.files}
    s, n = len(files["names"]), int(files["offsets"][-1])
    assert set(files["cameras"]) == {"54138969"} and files["offsets"].shape == (s + 1,)
    assert files["gt"].shape == (n, 17, 3) and files["valid"].shape == (n,) and int(files["layout"]) == 1
    assert list(files["estimate_keys"]) == ["p_agg", "j_agg_estimated_root"]
    assert files["hypotheses"].shape == (n, 2, 17, 3)
    assert np.allclose(files["hypotheses"].mean(1), files["pred_p_agg"], atol=1e-6)  # P-Agg = mean
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert json.loads(str(files["settings"]))["hypotheses"] == 2
    # another tool's scoring: MPJPE per action group (frames pooled), then the mean over groups
    groups = np.repeat(files["action_groups"], np.diff(files["offsets"]))
    per_group = [mpjpe(files["pred_p_agg"][groups == g], files["gt"][groups == g]) * 1000
                 for g in sorted(set(groups))]
    assert np.isclose(np.mean(per_group), report["results"]["P-Agg"]["mpjpe"]["final"], atol=0.01)


def test_independent_hypotheses_flag_turns_the_pairs_off(tmp_path, tiny_checkpoint, synthetic_dataset):
    from posediffusion.cli import main

    data_dir, name = synthetic_dataset
    hypotheses = {}
    for flag in ([], ["--independent-hypotheses"]):
        out = tmp_path / f"eval{len(flag)}"
        argv = ["evaluate", "-c", str(tiny_checkpoint), "-d", name, "--data-dir", str(data_dir), "-k", "gt",
                "-num_proposals", "2", "-sampling_timesteps", "1", "--aggregations", "p-agg",
                "--camera-ids", "54138969", "--max-sequences", "1", "--out", str(out),
                "--save-predictions", str(out / "pred.npz"), "--save-hypotheses", *flag]
        assert main(argv) == 0
        report = json.loads((out / "report.json").read_text())
        with np.load(out / "pred.npz", allow_pickle=False) as npz:
            hypotheses[bool(flag)] = npz["hypotheses"]
        assert report["settings"]["antithetic"] is not bool(flag)  # new checkpoints sample in pairs
    assert not np.allclose(hypotheses[False], hypotheses[True])


def test_save_predictions_is_checked_before_evaluating(tmp_path, tiny_checkpoint, capsys):
    from posediffusion.cli import main

    assert main(["evaluate", "-c", str(tiny_checkpoint), "--save-predictions", str(tmp_path / "p.txt")]) == 2
    assert "--save-predictions" in capsys.readouterr().err
    assert main(["evaluate", "-c", str(tiny_checkpoint), "--save-hypotheses"]) == 2
