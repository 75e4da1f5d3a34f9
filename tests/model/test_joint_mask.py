"""The missing-joint input (``ModelConfig.joint_mask``), joint dropout in training, and their use in lift."""

import json

import numpy as np
import pytest
import torch

from posediffusion.checkpoint import build_model, save_checkpoint
from posediffusion.config import LEGACY_MODEL_DEFAULTS, ModelConfig, TrainConfig
from posediffusion.data.body_prior import TEMPLATE_2D
from posediffusion.data.keypoints import save_keypoints_npz
from posediffusion.lift import lift_file, lift_keypoints
from posediffusion.model.energy import motion_energy
from posediffusion.model.joint_dropout import (
    GAP_FRACTION,
    NEVER_SEEN_JOINTS,
    WHOLE_FRAME_GAP,
    joint_dropout_mask,
)
from posediffusion.model.motion import (
    body_size,
    masked_body_size,
    masked_local_velocity,
)
from posediffusion.model.prompts import MotionPrompts
from posediffusion.skeleton import H36M_17
from posediffusion.train import train
from tests.helpers import make_tiny_model

RWRIST, LELBOW, RKNEE = (H36M_17.joints.index(n) for n in ("RWrist", "LElbow", "RKnee"))


def _windows(batch=2, frames=9, seed=0):
    """(B, T, 17, 2) smooth random 2D windows (normalised screen units)."""
    g = torch.Generator().manual_seed(seed)
    base = 0.3 * torch.randn(batch, 1, 17, 2, generator=g)
    drift = 0.01 * torch.randn(batch, frames, 17, 2, generator=g).cumsum(1)
    return base + drift


def _mask(batch=2, frames=9):
    """A wrist never seen, an elbow missing for 3 frames of window 0, one frame fully missing in window 1."""
    visible = torch.ones(batch, frames, 17, dtype=torch.bool)
    visible[:, :, RWRIST] = False
    visible[0, 2:5, LELBOW] = False
    visible[1, 6] = False
    return visible


def _sample(model, x2d, visible=None, seed=3):
    return model.sample(x2d, num_hypotheses=2, steps=2, flip=True,
                        generator=torch.Generator().manual_seed(seed), visible=visible)


# ------------------------------------------------------------------------------------------- config


def test_config_default_legacy_value_and_validation():
    assert ModelConfig().joint_mask is False
    assert LEGACY_MODEL_DEFAULTS["model"]["joint_mask"] is False
    with pytest.raises(ValueError, match="joint_mask must be true or false"):
        ModelConfig(joint_mask="yes")
    with pytest.raises(ValueError, match="joint_mask needs motion_features 'bounded'"):
        ModelConfig(joint_mask=True, motion_features="raw_2d")
    with pytest.raises(ValueError, match="joint_dropout must be in"):
        TrainConfig(joint_dropout=1.5)
    with pytest.raises(ValueError, match="joint_dropout > 0 needs a model with a missing-joint input"):
        TrainConfig(preset="tiny", joint_dropout=0.3).resolved()
    masked = TrainConfig(preset="tiny", joint_dropout=0.3, model={"joint_mask": True})
    assert masked.resolved().joint_dropout == 0.3


# -------------------------------------------------------------------------------------------- model


def test_without_the_mask_the_network_is_the_legacy_one_bit_for_bit():
    model = make_tiny_model().eval()
    stored = model.config.to_dict()
    del stored["model"]["joint_mask"]  # a checkpoint written before the field existed
    legacy = build_model(stored).eval()
    assert legacy.config == model.config
    legacy.load_state_dict(model.state_dict())  # strict: same parameters, same shapes
    assert model.denoiser.embed_2d.weight.shape == (32, 2)
    x2d = _windows()
    assert torch.equal(_sample(model, x2d), _sample(legacy, x2d))
    with pytest.raises(ValueError, match="no missing-joint input"):
        _sample(model, x2d, visible=_mask())


def test_masked_joints_coordinates_never_reach_the_output():
    model = make_tiny_model(joint_mask=True).eval()
    assert model.denoiser.embed_2d.weight.shape == (32, 3)  # x, y and the visibility flag
    x2d, visible = _windows(), _mask()
    reference = _sample(model, x2d, visible)
    moved = x2d.clone()
    moved[~visible] = torch.randn(int((~visible).sum()), 2) * 5  # placeholders anywhere
    assert torch.equal(_sample(model, moved, visible), reference)
    cond_a = model.denoiser.encode_condition(x2d, visible)
    cond_b = model.denoiser.encode_condition(moved, visible)
    assert cond_a.keys() == cond_b.keys() >= {"tokens", "frame_prompt", "energy", "visible"}
    assert all(torch.equal(cond_a[k], cond_b[k]) for k in cond_a)
    seen = x2d.clone()
    seen[0, 4, 0] += 0.05  # a seen joint (pelvis) moves: the output changes
    assert not torch.equal(_sample(model, seen, visible), reference)
    # the mask itself is an input: the same coordinates flagged seen give another output
    assert not torch.equal(_sample(model, x2d), reference)
    # no mask = every joint seen
    assert torch.equal(_sample(model, x2d), _sample(model, x2d, torch.ones_like(visible)))


def test_visibility_shape_is_checked():
    model = make_tiny_model(joint_mask=True).eval()
    with pytest.raises(ValueError, match="visible must be a"):
        _sample(model, _windows(), torch.ones(2, 9, 16, dtype=torch.bool))


# --------------------------------------------------------------------------------- masked features


def test_masked_velocity_is_exact_for_linear_motion_and_matches_weighted_least_squares():
    t = torch.arange(20, dtype=torch.float64)
    x = (0.3 + 0.02 * t)[None, :, None].repeat(1, 1, 2)  # (1, 20, 2), slope 0.02
    x[0, :, 1] += 0.1 * torch.sin(t)  # channel 1 is not linear
    visible = torch.ones(1, 20, 2, dtype=torch.bool)
    visible[0, [0, 3, 4, 5, 11, 19], :] = False
    placeholder = x.clone()
    placeholder[~visible] = 9.0
    velocity, variance, valid = masked_local_velocity(placeholder, visible, sigma=2.0)
    assert valid.all()
    torch.testing.assert_close(velocity[0, :, 0], torch.full((20,), 0.02, dtype=torch.float64))
    # independent: numpy's weighted polynomial fit over the seen frames of each window (w = sqrt(weights))
    radius = 6
    for frame in range(20):
        k = np.arange(max(0, frame - radius), min(20, frame + radius + 1))
        k = k[visible[0, k, 1].numpy()]
        weights = np.exp(-0.5 * ((k - frame) / 2.0) ** 2)
        slope = np.polyfit(k - frame, x[0, k, 1].numpy(), 1, w=np.sqrt(weights))[0]
        assert velocity[0, frame, 1].item() == pytest.approx(slope, abs=1e-12)
    # fewer than two seen frames in the window: unknown, 0
    sparse = torch.zeros(1, 20, 1, dtype=torch.bool)
    sparse[0, 10] = True
    v, var, ok = masked_local_velocity(x[..., :1], sparse, sigma=1.0)
    assert not ok.any() and (v == 0).all() and (var == 0).all()


def test_all_seen_masked_features_equal_the_unmasked_ones():
    x2d = _windows(frames=27)
    everything = torch.ones(x2d.shape[:-1], dtype=torch.bool)
    torch.testing.assert_close(masked_body_size(x2d, everything), body_size(x2d))
    torch.testing.assert_close(motion_energy(x2d, 3.0, everything), motion_energy(x2d, 3.0), atol=1e-5,
                               rtol=1e-5)
    prompts = MotionPrompts(H36M_17, 16)
    torch.testing.assert_close(prompts.features(x2d, everything), prompts.features(x2d), atol=1e-5,
                               rtol=1e-5)


def test_masked_body_size_by_hand():
    x2d = torch.zeros(1, 1, 17, 2)
    x2d[0, 0, :3] = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])  # centroid (2/3, 2/3)
    visible = torch.zeros(1, 1, 17, dtype=torch.bool)
    visible[0, 0, :3] = True
    expected = np.sqrt(((2 / 3) ** 2 * 2 + (4 / 3) ** 2 + (2 / 3) ** 2 + (2 / 3) ** 2 + (4 / 3) ** 2) / 3)
    assert masked_body_size(x2d, visible).item() == pytest.approx(expected, rel=1e-6)


def test_a_zeroed_missing_joint_is_not_a_jump():
    still = _windows(batch=1, frames=27)[:, :1].repeat(1, 27, 1, 1)  # a still pose
    dropped = still.clone()
    dropped[0, 10:14, RKNEE] = 0.0  # the detector lost the knee: placeholder 0
    visible = torch.ones(1, 27, 17, dtype=torch.bool)
    visible[0, 10:14, RKNEE] = False
    assert (motion_energy(still, 3.0) == 0).all()  # still reads as still (below the noise floor)
    assert motion_energy(dropped, 3.0).max() > 0.1  # unmasked, the placeholder reads as motion
    assert (motion_energy(dropped, 3.0, visible) == 0).all()
    prompts = MotionPrompts(H36M_17, 16)
    assert (prompts.features(dropped, visible) == 0).all()  # still: every feature 0
    assert prompts.features(dropped).abs().max() > 0.5


# ------------------------------------------------------------------------------------- joint dropout


def test_dropout_statistics_match_the_stated_scheme():
    rate, batch, frames = 0.3, 20000, 27
    visible = joint_dropout_mask(batch, frames, 17, rate, torch.Generator().manual_seed(0))
    assert visible.shape == (batch, frames, 17) and visible.dtype == torch.bool
    never = ~visible.any(dim=1)  # (B, J) joints missing in every frame
    assert set(torch.nonzero(never.any(0)).flatten().tolist()) == set(NEVER_SEEN_JOINTS)
    has_never = never.any(1)
    assert has_never.float().mean().item() == pytest.approx(rate, abs=0.015)
    counts = never[has_never].sum(1)
    for k in (1, 2, 3):
        assert (counts == k).float().mean().item() == pytest.approx(1 / 3, abs=0.025)
    per_joint = never[:, list(NEVER_SEEN_JOINTS)].float().mean(0)
    torch.testing.assert_close(per_joint, torch.full((9,), rate * 2 / 9), atol=0.006, rtol=0)
    # gaps: runs of missing frames shorter than the window, at most GAP_FRACTION * T long
    partly = ~visible & ~never[:, None, :]  # (B, T, J) missing in some but not all frames
    longest = max(1, int(GAP_FRACTION * frames))
    assert partly.sum(1).max().item() == longest
    whole_frame = (~visible).all(dim=2).any(dim=1)  # a frame with every joint missing
    assert whole_frame.float().mean().item() == pytest.approx(rate * WHOLE_FRAME_GAP, abs=0.01)
    # a one-joint gap is invisible in the mask when it falls on a never-seen joint
    expected_gap = rate * (WHOLE_FRAME_GAP + (1 - WHOLE_FRAME_GAP) * (1 - rate * 2 / 17))
    assert partly.any(dim=(1, 2)).float().mean().item() == pytest.approx(expected_gap, abs=0.015)


def test_dropout_is_deterministic_per_generator_and_free_at_rate_zero():
    a = joint_dropout_mask(64, 27, 17, 0.5, torch.Generator().manual_seed(7))
    b = joint_dropout_mask(64, 27, 17, 0.5, torch.Generator().manual_seed(7))
    c = joint_dropout_mask(64, 27, 17, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    assert joint_dropout_mask(4, 9, 17, 0.0, g).all() and torch.equal(g.get_state(), state)
    with pytest.raises(ValueError, match="rate must be in"):
        joint_dropout_mask(4, 9, 17, -0.1)


def test_training_loss_hides_the_dropped_joints_and_scores_all():
    model = make_tiny_model(joint_mask=True)
    x2d, x3d = _windows(batch=4), 0.1 * _windows(batch=4, seed=1).repeat_interleave(2, -1)[..., :3]
    dropped = model.training_loss(x2d, x3d, torch.Generator().manual_seed(5), joint_dropout=0.7)
    g = torch.Generator().manual_seed(5)
    mask = joint_dropout_mask(4, 9, 17, 0.7, g)  # the same draws, first from the generator
    assert not mask.all()
    assert torch.equal(dropped, model.training_loss(x2d, x3d, g, visible=mask))
    assert not torch.equal(dropped, model.training_loss(x2d, x3d, torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="joint_dropout needs a model with a missing-joint input"):
        make_tiny_model().training_loss(x2d, x3d, joint_dropout=0.5)


def test_training_with_joint_dropout_runs_and_is_deterministic(tmp_path, synthetic_dataset):
    data_dir, name = synthetic_dataset

    def run(folder):
        return train(TrainConfig.from_dict(dict(
            preset="tiny", model={"joint_mask": True}, joint_dropout=0.5, checkpoint=str(tmp_path / folder),
            epochs=1, max_steps=3, batch_size=8, val_max_windows=4, progress_bar=False, tensorboard=False,
            data={"dataset": name, "data_dir": str(data_dir), "max_frames_per_sequence": 18})))

    first, second = run("a"), run("b")
    assert len(first.losses) == 3 and np.isfinite(first.losses).all()
    assert first.losses == second.losses
    assert first.model.config.model.joint_mask
    assert json.loads((tmp_path / "a" / "last" / "config.json").read_text())["model"]["model"]["joint_mask"]


# ---------------------------------------------------------------------------------------------- lift


def _track_with_hidden_wrist(frames=12):
    pixels = TEMPLATE_2D[None] * 0.35 + np.array([500.0, 400.0]) + np.arange(frames)[:, None, None] * [2.0, 0]
    pixels[:, RWRIST] = np.nan  # never seen
    pixels[4:6, LELBOW] = np.nan  # a short gap
    return pixels


def test_lift_lets_the_model_infer_missing_joints_and_says_so(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "masked", make_tiny_model(joint_mask=True).eval())
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track_with_hidden_wrist(), (1000, 1000))
    result = lift_file(src, checkpoint=checkpoint, hypotheses=2, steps=1)
    assert result.inferred[:, RWRIST].all() and result.inferred.sum() == 12
    assert result.filled[4:6, LELBOW].all() and result.filled.sum() == 14
    assert result.settings["inferred_by"] == "model"
    assert result.settings["missing_joints_to_model"] == 14
    assert result.settings["inferred_joints"] == ["RWrist"]
    saved = np.load(result.save(tmp_path / "out.npz"))
    assert saved["inferred"][:, RWRIST].all()
    assert json.loads(str(saved["settings"]))["inferred_by"] == "model"
    payload = json.loads(result.save_json(tmp_path / "out.json").read_text())
    assert payload["settings"]["inferred_by"] == "model" and np.array(payload["inferred"])[:, RWRIST].all()


def test_lift_result_does_not_depend_on_the_placeholders_of_missing_joints():
    model = make_tiny_model(joint_mask=True).eval()
    pixels = np.nan_to_num(_track_with_hidden_wrist(), nan=500.0).astype(np.float32)
    visible = np.ones((12, 17), bool)
    visible[:, RWRIST] = False
    visible[4:6, LELBOW] = False
    elsewhere = pixels.copy()
    elsewhere[~visible] = [300.0, 700.0]
    a = lift_keypoints(pixels, (1000, 1000), model, hypotheses=2, steps=2, visible=visible)
    b = lift_keypoints(elsewhere, (1000, 1000), model, hypotheses=2, steps=2, visible=visible)
    np.testing.assert_array_equal(a.pose_3d, b.pose_3d)
    np.testing.assert_array_equal(a.uncertainty, b.uncertainty)
    with pytest.raises(ValueError, match="visible must be a"):
        lift_keypoints(pixels, (1000, 1000), model, visible=visible[:, :16])
    with pytest.raises(ValueError, match="visible needs a model with a missing-joint input"):
        lift_keypoints(pixels, (1000, 1000), make_tiny_model().eval(), visible=visible)


def test_an_old_model_keeps_the_body_prior(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "plain", make_tiny_model().eval())
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track_with_hidden_wrist(), (1000, 1000))
    result = lift_file(src, checkpoint=checkpoint, hypotheses=1, steps=1)
    assert result.settings["inferred_by"] == "body prior"
    assert "missing_joints_to_model" not in result.settings
    assert result.inferred[:, RWRIST].all()


def test_never_seen_prior_lifts_the_body_prior_placement_as_seen(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "masked", make_tiny_model(joint_mask=True).eval())
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track_with_hidden_wrist(), (1000, 1000))
    prior = lift_file(src, checkpoint=checkpoint, hypotheses=2, steps=1, never_seen="prior")
    model = lift_file(src, checkpoint=checkpoint, hypotheses=2, steps=1, never_seen="model")
    assert prior.settings["inferred_by"] == "body prior" and model.settings["inferred_by"] == "model"
    # only the 2-frame elbow gap still goes to the network as missing; the 12 wrist frames are read
    assert prior.settings["missing_joints_to_model"] == 2 and model.settings["missing_joints_to_model"] == 14
    assert prior.inferred[:, RWRIST].all()
    assert not np.allclose(prior.pose_3d[:, RWRIST], model.pose_3d[:, RWRIST])


def test_never_seen_model_needs_the_missing_joint_input(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "plain", make_tiny_model().eval())
    src = tmp_path / "kp.npz"
    save_keypoints_npz(src, _track_with_hidden_wrist(), (1000, 1000))
    with pytest.raises(ValueError, match="--never-seen model needs a model with a missing-joint input"):
        lift_file(src, checkpoint=checkpoint, hypotheses=1, steps=1, never_seen="model")
    with pytest.raises(ValueError, match="--never-seen guess: expected one of model, prior"):
        lift_file(src, checkpoint=checkpoint, hypotheses=1, steps=1, never_seen="guess")
    assert lift_file(src, checkpoint=checkpoint, hypotheses=1, steps=1,
                     never_seen="prior").settings["inferred_by"] == "body prior"
