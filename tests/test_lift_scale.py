"""``posediffusion lift`` gives metric size (``--scale``, ``--height``, ``--no-rescale``): the bundled model
on a short keypoint file cut from the bundled sample, every output checked for the scale it records."""

import contextlib
import io
import json

import numpy as np
import pytest

from posediffusion import scale
from posediffusion.cli import main
from posediffusion.data.keypoints import save_keypoints_npz
from posediffusion.lift import bundled_sample, lift_keypoints, load_lifter

FRAMES = 40
FAST = ["--hypotheses", "2", "--steps", "2"]
RUNS = {"default": [], "none": ["--scale", "none"], "no_rescale": ["--no-rescale"],
        "height_1.6": ["--height", "1.6"], "height_1.9": ["--height", "1.9"]}


def _thigh(pose: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(pose[:, [2, 5]] - pose[:, [1, 4]], axis=-1)))


@pytest.fixture(scope="module")
def lifted(tmp_path_factory):
    """name -> (npz arrays, printed stdout) of one ``lift`` run per entry of ``RUNS``; the default run also
    writes JSON and CSV, and the default and ``none`` runs keep all hypotheses."""
    folder = tmp_path_factory.mktemp("lift_scale")
    sample = np.load(bundled_sample())
    src = folder / "clip.npz"
    save_keypoints_npz(src, sample["keypoints"][:FRAMES], tuple(int(v) for v in sample["image_size"]))
    out = {}
    for name, flags in RUNS.items():
        extra = ["--all-hypotheses"] if name in ("default", "none") else []
        if name == "default":
            extra += ["--json", str(folder / "default.json"), "--csv", str(folder / "default.csv")]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["lift", str(src), "--out", str(folder / f"{name}.npz"), *FAST, *flags, *extra]) == 0
        out[name] = (dict(np.load(folder / f"{name}.npz")), printed.getvalue())
    out["folder"] = folder
    return out


def test_default_output_has_the_reference_skeletons_size(lifted):
    data, printed = lifted["default"]
    reference = scale.REFERENCE_LENGTHS_M[("RHip", "RKnee")]
    assert _thigh(data["pose_3d"]) == pytest.approx(reference, rel=0.15)
    assert str(data["scale_method"]) == "prior" and np.isnan(data["height"])
    assert "to the reference skeleton (--scale prior)" in printed


def test_height_flags_scale_by_the_ratio_of_the_heights(lifted):
    low, high = lifted["height_1.6"][0], lifted["height_1.9"][0]
    np.testing.assert_allclose(high["pose_3d"], low["pose_3d"] * (1.9 / 1.6), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(high["uncertainty"], low["uncertainty"] * (1.9 / 1.6), rtol=1e-4, atol=1e-7)
    for data, height in ((low, 1.6), (high, 1.9)):
        assert scale.standing_height(data["pose_3d"], data["inferred"]) == pytest.approx(height, abs=1e-3)
        assert str(data["scale_method"]) == "height" and float(data["height"]) == height
    assert "to --height 1.9 m" in lifted["height_1.9"][1]


def test_scale_none_and_no_rescale_are_the_network_output(lifted):
    raw, default = lifted["none"][0], lifted["default"][0]
    for key in ("pose_3d", "uncertainty"):
        np.testing.assert_array_equal(lifted["no_rescale"][0][key], raw[key])
    assert float(raw["scale_factor"]) == 1.0 and str(raw["scale_method"]) == "none"
    model, _ = load_lifter(None)
    network = lift_keypoints(raw["keypoints_2d"], tuple(raw["image_size"]), model, hypotheses=2, steps=2)
    np.testing.assert_allclose(raw["pose_3d"], network.pose_3d, atol=1e-6)
    # the default is the same output times one factor: pose, uncertainty and hypotheses alike
    factor = float(default["scale_factor"])
    assert factor == pytest.approx(scale.prior_scale(raw["pose_3d"], raw["inferred"]), rel=1e-5)
    for key in ("pose_3d", "uncertainty", "hypotheses"):
        np.testing.assert_allclose(default[key], raw[key] * factor, rtol=1e-5, atol=1e-7)
    assert "not rescaled (--scale none)" in lifted["none"][1]


def test_scale_is_recorded_in_every_output(lifted):
    data, _ = lifted["default"]
    factor = float(data["scale_factor"])
    settings = json.loads(str(data["settings"]))["scale"]
    assert settings["method"] == "prior" and settings["factor"] == pytest.approx(factor)
    assert settings["height_m"] is None
    assert settings["standing_height_m"] == pytest.approx(settings["network_standing_height_m"] * factor,
                                                          abs=1e-3)
    doc = json.loads((lifted["folder"] / "default.json").read_text())
    assert (doc["scale_method"], doc["height"]) == ("prior", None)
    assert doc["scale_factor"] == pytest.approx(factor) and doc["settings"]["scale"] == settings
    lines = (lifted["folder"] / "default.csv").read_text().splitlines()
    assert lines[0].endswith(",inferred,scale,scale_method,height")
    assert all(line.endswith(f",{factor:.6g},prior,") for line in lines[1:])
    tall = json.loads(str(lifted["height_1.9"][0]["settings"]))["scale"]
    assert tall["method"] == "height" and tall["height_m"] == 1.9
    assert tall["standing_height_m"] == pytest.approx(1.9, abs=1e-3)


def test_rescale_multiplies_everything_once_and_falls_back_when_nothing_was_seen(tiny_model, caplog):
    from posediffusion.lift import rescale

    pixels = np.random.default_rng(0).uniform(300, 700, (1, 17, 2)) + np.arange(6)[:, None, None]
    raw = lift_keypoints(pixels.astype(np.float32), (1000, 1000), tiny_model, hypotheses=2, steps=1,
                         keep_hypotheses=True)
    pose, hyps = raw.pose_3d.copy(), raw.hypotheses.copy()
    raw.inferred = np.ones((6, 17), bool)  # every joint never seen: the scale measures them anyway
    scaled = rescale(raw, "prior")
    assert "touches a joint never seen" in caplog.text
    assert scaled.scale_factor == pytest.approx(scale.prior_scale(pose), rel=1e-6)
    np.testing.assert_allclose(scaled.pose_3d, pose * scaled.scale_factor, rtol=1e-6)
    np.testing.assert_allclose(scaled.hypotheses, hyps * scaled.scale_factor, rtol=1e-6)
    with pytest.raises(ValueError, match="already rescaled"):
        rescale(scaled, "prior")
