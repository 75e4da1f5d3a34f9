import numpy as np
import pytest
import torch

from posediffusion import aggregate
from posediffusion.camera import normalize_screen, project_to_pixels

PINHOLE = {"focal_length": np.array([1000.0, 1010.0]), "center": np.array([500.0, 480.0]),
           "res_w": 1000, "res_h": 1000}
# Human3.6M S1 camera 54138969 (h36m_cameras.json): real distortion coefficients.
H36M_CAMERA = {"focal_length": np.array([1145.04940459, 1143.78109572]),
               "center": np.array([512.54150496, 515.45148698]),
               "radial_distortion": np.array([-0.2070989108, 0.2477751831, -0.0030751504]),
               "tangential_distortion": np.array([-0.0014244716, -0.0009756989]),
               "res_w": 1000, "res_h": 1002}


def _screen(points_cam, camera):
    return normalize_screen(project_to_pixels(points_cam, camera), camera["res_w"], camera["res_h"])


def _truth(gen, batch=2, frames=3, joints=17):
    """Root-relative poses (metres) and camera-frame roots in front of the camera."""
    pose = torch.randn(batch, frames, joints, 3, generator=gen, dtype=torch.float64) * 0.3
    pose = pose - pose[..., :1, :]
    root = torch.tensor([0.2, -0.1, 5.0], dtype=torch.float64) + 0.3 * torch.randn(
        batch, frames, 3, generator=gen, dtype=torch.float64)
    return pose, root


def _hypotheses_around(truth, gen, offset=0.25):
    """(B, 3, T, J, 3): per joint a random slot holds the truth, the others truth +- a 2D (X, Y) offset.

    The +- pair is symmetric, so the P-Agg mean is exactly the truth.
    """
    b, t, j, _ = truth.shape
    direction = torch.randn(b, t, j, 3, generator=gen, dtype=truth.dtype)
    direction[..., 2] = 0
    d = offset * direction / direction.norm(dim=-1, keepdim=True)
    candidates = torch.stack([truth, truth + d, truth - d], dim=1)  # (B, 3, T, J, 3)
    slots = torch.argsort(torch.rand(b, 3, t, j, generator=gen), dim=1)  # random permutation per joint
    hyps = torch.gather(candidates, 1, slots[..., None].expand(-1, -1, -1, -1, 3))
    return hyps


def test_pose_aggregate_is_mean():
    hyps = torch.arange(2 * 3 * 4 * 17 * 3, dtype=torch.float32).reshape(2, 3, 4, 17, 3)
    torch.testing.assert_close(aggregate.pose_aggregate(hyps), hyps.mean(1))


def test_estimated_root_exact_without_distortion():
    gen = torch.Generator().manual_seed(0)
    pose, root = _truth(gen)
    kp = _screen(pose + root[..., None, :], PINHOLE)
    est = aggregate.estimate_root_translation(pose, kp, PINHOLE)
    assert est.shape == root.shape
    torch.testing.assert_close(est, root, atol=1e-5, rtol=0)


def test_estimated_root_close_with_h36m_distortion():
    gen = torch.Generator().manual_seed(1)
    pose, root = _truth(gen)
    kp = _screen(pose + root[..., None, :], H36M_CAMERA)
    est = aggregate.estimate_root_translation(pose, kp, H36M_CAMERA)
    assert (est - root).norm(dim=-1).max() < 1e-3  # 1 mm at 5 m: distortion is inverted before the solve
    # ignoring the distortion would be much worse: that is what the undistortion step buys
    no_dist = {k: v for k, v in H36M_CAMERA.items() if "distortion" not in k}
    naive = aggregate.estimate_root_translation(pose, kp, no_dist)
    assert (naive - root).norm(dim=-1).max() > 10 * (est - root).norm(dim=-1).max()


@pytest.mark.parametrize("root_source", ["ground_truth", "estimated"])
@pytest.mark.parametrize("camera", [PINHOLE, H36M_CAMERA], ids=["pinhole", "h36m"])
def test_joint_aggregate_picks_consistent_hypothesis(root_source, camera):
    gen = torch.Generator().manual_seed(2)
    truth, root = _truth(gen)
    hyps = _hypotheses_around(truth, gen)
    kp = _screen(truth + root[..., None, :], camera)
    out = aggregate.joint_aggregate(hyps, kp, camera, root=root, root_source=root_source)
    torch.testing.assert_close(out, truth)


def test_joint_aggregate_weak_perspective():
    gen = torch.Generator().manual_seed(3)
    truth, _ = _truth(gen)
    hyps = _hypotheses_around(truth, gen)
    scale = torch.tensor([[0.4, 0.5, 0.6], [0.3, 0.3, 0.35]], dtype=torch.float64)[..., None, None]
    kp = scale * truth[..., :2] + torch.tensor([0.1, -0.2], dtype=torch.float64)
    out = aggregate.joint_aggregate(hyps, kp, camera=None, root_source="weak_perspective")
    torch.testing.assert_close(out, truth)
    # and it still works with a real perspective projection of a distant subject
    far = truth + torch.tensor([0.0, 0.0, 12.0], dtype=torch.float64)
    out = aggregate.joint_aggregate(hyps, _screen(far, PINHOLE), root_source="weak_perspective")
    torch.testing.assert_close(out, truth)


def test_joint_aggregate_brute_force_choice():
    """Against a loop: the chosen hypothesis has the smallest 2D distance for every joint and frame."""
    gen = torch.Generator().manual_seed(4)
    hyps = torch.randn(1, 4, 2, 17, 3, generator=gen, dtype=torch.float64) * 0.3
    root = torch.tensor([[[0.0, 0.0, 4.0], [0.1, 0.0, 4.5]]], dtype=torch.float64)
    kp = torch.randn(1, 2, 17, 2, generator=gen, dtype=torch.float64) * 0.1
    out = aggregate.joint_aggregate(hyps, kp, PINHOLE, root=root, root_source="ground_truth")
    for t in range(2):
        for j in range(17):
            dists = [np.linalg.norm(_screen(hyps[0, h, t, j] + root[0, t], PINHOLE) - kp[0, t, j])
                     for h in range(4)]
            torch.testing.assert_close(out[0, t, j], hyps[0, int(np.argmin(dists)), t, j])


def test_step_dimension_broadcasts_and_dtype_follows():
    gen = torch.Generator().manual_seed(5)
    truth, root = _truth(gen)
    hyps = torch.stack([_hypotheses_around(truth, gen) for _ in range(3)]).float()  # (K, B, H, T, J, 3)
    kp = _screen(truth + root[..., None, :], PINHOLE).float()
    out = aggregate.joint_aggregate(hyps, kp, PINHOLE)
    assert out.shape == (3, *truth.shape) and out.dtype == torch.float32
    for k in range(3):
        torch.testing.assert_close(out[k], aggregate.joint_aggregate(hyps[k], kp, PINHOLE))
    torch.testing.assert_close(out, truth.float().expand(3, -1, -1, -1, -1), atol=1e-5, rtol=0)


def test_oracles_against_loops():
    gen = torch.Generator().manual_seed(6)
    hyps = torch.randn(2, 5, 3, 17, 3, generator=gen)
    gt = torch.randn(2, 3, 17, 3, generator=gen)
    jb, pb = aggregate.joint_best(hyps, gt), aggregate.pose_best(hyps, gt)
    for b in range(2):
        for t in range(3):
            errs = [float((hyps[b, h, t] - gt[b, t]).norm(dim=-1).mean()) for h in range(5)]
            torch.testing.assert_close(pb[b, t], hyps[b, int(np.argmin(errs)), t])
            for j in range(17):
                d = [float((hyps[b, h, t, j] - gt[b, t, j]).norm()) for h in range(5)]
                torch.testing.assert_close(jb[b, t, j], hyps[b, int(np.argmin(d)), t, j])
    # J-Best can only be better than P-Best, which can only be better than the average hypothesis
    err = lambda x: float((x - gt).norm(dim=-1).mean())  # noqa: E731
    assert err(jb) <= err(pb) <= float((hyps - gt[:, None]).norm(dim=-1).mean())


def test_bad_inputs():
    hyps = torch.zeros(1, 2, 3, 17, 3)
    kp = torch.zeros(1, 3, 17, 2)
    with pytest.raises(ValueError, match="ground-truth|GT"):
        aggregate.joint_aggregate(hyps, kp, PINHOLE, root_source="ground_truth")
    with pytest.raises(ValueError, match="camera"):
        aggregate.joint_aggregate(hyps, kp, None, root_source="estimated")
    with pytest.raises(ValueError, match="root_source"):
        aggregate.joint_aggregate(hyps, kp, PINHOLE, root_source="magic")
    with pytest.raises(ValueError, match="keypoints_2d"):
        aggregate.joint_aggregate(hyps, kp[..., :16, :], PINHOLE)
    with pytest.raises(ValueError, match="hypotheses"):
        aggregate.pose_aggregate(torch.zeros(3, 17, 3))


def test_hypothesis_spread_hand_values():
    pose = np.zeros((1, 17, 3))
    hyps = np.zeros((2, 1, 17, 3))
    hyps[0, 0, 4] = [0.3, 0.4, 0.0]  # 0.5 m away
    hyps[1, 0, 4] = [0.0, 0.0, 0.1]  # 0.1 m away
    spread = aggregate.hypothesis_spread(hyps, pose)  # numpy in, numpy out
    assert spread[0, 4] == pytest.approx(0.3) and spread[0, 0] == 0.0
    assert isinstance(spread, np.ndarray)
    # default centre: the P-Agg mean; torch in, torch out, and the H dim may follow leading dims (K, ...)
    h = torch.randn(3, 4, 5, 17, 3, dtype=torch.float64)  # (K, H, T, J, 3)
    expected = torch.linalg.vector_norm(h - h.mean(1, keepdim=True), dim=-1).mean(1)
    assert torch.equal(aggregate.hypothesis_spread(h), expected)


def test_estimate_labels():
    assert aggregate.estimate_label("p-agg") == "P-Agg"
    assert aggregate.estimate_label("j-agg", "weak_perspective") == "J-Agg (weak perspective)"
    assert aggregate.estimate_label("j-agg", "ground_truth") == "J-Agg (GT root)"
    assert aggregate.estimate_label("p-best") == "P-Best (ORACLE)"
    with pytest.raises(ValueError, match="root source"):
        aggregate.estimate_label("j-agg")
    with pytest.raises(ValueError, match="aggregation"):
        aggregate.estimate_label("pose")
