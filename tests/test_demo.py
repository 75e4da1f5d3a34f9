"""The README's first command: the bundled model lifts the bundled held-out sample end to end."""

import numpy as np
from PIL import Image

from posediffusion.cli import main
from posediffusion.lift import bundled_checkpoint, bundled_sample
from posediffusion.metrics import mpjpe


def test_bundled_assets_are_in_the_package():
    assert (bundled_checkpoint() / "model.safetensors").is_file()
    assert (bundled_checkpoint() / "config.json").is_file()
    sample = np.load(bundled_sample())
    assert sample["keypoints"].shape[1:] == (17, 2) and sample["ground_truth"].shape[1:] == (17, 3)
    assert "mocap.cs.cmu.edu" in str(sample["description"])  # the data credit travels with the sample


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--hypotheses", "2", "--steps", "2", "--render-frames", "6"]) == 0
    printed = capsys.readouterr().out
    assert "MPJPE" in printed and "P-Agg" in printed and "J-Agg" in printed
    data = np.load(out / "demo_prediction.npz")
    gt = np.load(bundled_sample())["ground_truth"]
    assert data["pose_3d"].shape == gt.shape
    # the bundled model is trained: better than the clip's own mean pose, a constant that peeks at the
    # ground truth (~200 mm here); an untrained model scores ~480 mm
    mean_pose_error = mpjpe(np.broadcast_to(gt.mean(0), gt.shape), gt)
    assert mpjpe(data["pose_3d"], gt) < 0.85 * mean_pose_error
    with Image.open(out / "demo.gif") as gif:
        assert gif.n_frames == 6


def test_demo_samples_with_the_setting_it_prints(tmp_path, monkeypatch, capsys):
    import posediffusion.lift as lift_module

    seen = {}
    real = lift_module.lift_keypoints

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **{**kwargs, "hypotheses": 1, "steps": 1})  # fast; the arguments are what count

    monkeypatch.setattr(lift_module, "lift_keypoints", spy)
    assert main(["demo", "--out", str(tmp_path / "d"), "--no-render"]) == 0
    assert "H=5, K=5, flip" in capsys.readouterr().out
    assert (seen["hypotheses"], seen["steps"], seen["flip"]) == (5, 5, True)  # not lift's fast default
