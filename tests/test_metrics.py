import numpy as np
import pytest
import torch

from posediffusion import metrics
from posediffusion.skeleton import MPI_TO_H36M


def _random_pose(rng, *lead, joints=17):
    return rng.normal(size=(*lead, joints, 3))


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _umeyama_aligned(pred, gt):
    """Independent similarity alignment (Umeyama 1991, column vectors), no reflections, one frame."""
    mu_p, mu_g = pred.mean(0), gt.mean(0)
    pc, gc = pred - mu_p, gt - mu_g
    cov = gc.T @ pc / len(pred)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(3)
    s[2, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    rot = u @ s @ vt
    scale = np.trace(np.diag(d) @ s) / (pc**2).sum(1).mean()
    return (scale * (rot @ pred.T)).T + (mu_g - scale * rot @ mu_p)


def test_mpjpe_hand_values():
    gt = np.zeros((2, 2, 3))
    pred = gt.copy()
    pred[0, 0] = [3.0, 4.0, 0.0]  # frame 0: errors 5 and 0 -> 2.5
    pred[1] = [[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]]  # frame 1: errors 1 and 2 -> 1.5
    assert metrics.mpjpe(pred, gt) == pytest.approx(2.0)
    np.testing.assert_allclose(metrics.mpjpe(pred, gt, reduction="none"), [2.5, 1.5])
    assert metrics.mpjpe(pred, gt, mask=np.array([False, True])) == pytest.approx(1.5)
    masked = metrics.mpjpe(pred, gt, mask=np.array([True, False]), reduction="none")
    assert masked[0] == pytest.approx(2.5) and np.isnan(masked[1])


def test_mpjpe_against_loop_and_types():
    rng = np.random.default_rng(0)
    pred, gt = _random_pose(rng, 3, 4), _random_pose(rng, 3, 4)
    loop = np.mean([np.linalg.norm(pred[b, t, j] - gt[b, t, j]) for b in range(3) for t in range(4)
                    for j in range(17)])
    assert metrics.mpjpe(pred, gt) == pytest.approx(loop, rel=1e-12)
    per_frame = metrics.mpjpe(torch.from_numpy(pred), torch.from_numpy(gt), reduction="none")
    assert isinstance(per_frame, torch.Tensor) and per_frame.shape == (3, 4)
    assert isinstance(metrics.mpjpe(pred, gt, reduction="none"), np.ndarray)
    assert isinstance(metrics.mpjpe(pred, gt), float)


def test_p_mpjpe_zero_for_similarity_transform():
    rng = np.random.default_rng(1)
    gt = _random_pose(rng, 5)
    pred = np.stack([1.7 * g @ _random_rotation(rng) + rng.normal(size=3) for g in gt])
    assert metrics.p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(metrics.procrustes_align(pred, gt), gt, atol=1e-9)


def test_procrustes_against_independent_svd():
    rng = np.random.default_rng(2)
    pred, gt = _random_pose(rng, 6), _random_pose(rng, 6)
    expected = np.stack([_umeyama_aligned(p, g) for p, g in zip(pred, gt, strict=True)])
    np.testing.assert_allclose(metrics.procrustes_align(pred, gt), expected, rtol=1e-6, atol=1e-9)
    direct = np.mean(np.linalg.norm(expected - gt, axis=-1))
    assert metrics.p_mpjpe(pred, gt) == pytest.approx(direct, rel=1e-6)


def test_procrustes_does_not_reflect():
    rng = np.random.default_rng(3)
    gt = _random_pose(rng, 1)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a reflection: only an improper "rotation" would undo it
    err = metrics.p_mpjpe(mirrored, gt)
    assert err > 0.1
    expected = np.mean(np.linalg.norm(_umeyama_aligned(mirrored[0], gt[0]) - gt[0], axis=-1))
    assert err == pytest.approx(expected, rel=1e-6)
    # the fitted linear map (centred mirrored -> centred aligned) is a scaled proper rotation
    aligned = metrics.procrustes_align(mirrored, gt)[0]
    m, c = mirrored[0] - mirrored[0].mean(0), aligned - aligned.mean(0)
    linear_map = np.linalg.lstsq(m, c, rcond=None)[0]
    assert np.linalg.det(linear_map) > 0


def test_n_mpjpe_hand_and_independent():
    gt = np.array([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    assert metrics.n_mpjpe(3.0 * gt, gt) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(4)
    pred, gt = _random_pose(rng, 4), _random_pose(rng, 4)
    errs = []
    for p, g in zip(pred, gt, strict=True):
        s = np.sum(p * g) / np.sum(p * p)
        errs.append(np.mean(np.linalg.norm(s * p - g, axis=-1)))
    assert metrics.n_mpjpe(pred, gt) == pytest.approx(np.mean(errs), rel=1e-6)


def test_mpjve_hand_values_and_mask():
    gt = np.zeros((3, 1, 3))
    pred = np.array([[[0.0, 0, 0]], [[1.0, 0, 0]], [[3.0, 0, 0]]])  # velocities 1 and 2
    assert metrics.mpjve(pred, gt) == pytest.approx(1.5)
    np.testing.assert_allclose(metrics.mpjve(pred, gt, reduction="none"), [1.0, 2.0])
    assert metrics.mpjve(pred, gt, mask=np.array([True, True, False])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 frames"):
        metrics.mpjve(pred[:1], gt[:1])


def _pck_case(joint_order):
    """17-joint frame where 7 scored joints err by 149.9 mm, 7 by exactly 150 mm, the rest by 1 m."""
    errors_3dhp = np.array([149.9] * 7 + [150.0] * 7 + [1000.0] * 3)
    gt = np.zeros((1, 17, 3))
    pred = np.zeros((1, 17, 3))
    pred[0, :, 1] = errors_3dhp
    if joint_order == "h36m":
        pred = pred[:, list(MPI_TO_H36M)]
    return pred, gt


@pytest.mark.parametrize("joint_order", ["h36m", "3dhp"])
def test_pck_is_strict_and_uses_14_joints(joint_order):
    pred, gt = _pck_case(joint_order)
    assert metrics.pck(pred, gt, joint_order=joint_order) == pytest.approx(50.0)
    assert metrics.pck(pred / 1000.0, gt, joint_order=joint_order, unit="m") == pytest.approx(50.0)


def test_pck_joint_sets():
    assert len(metrics.PCK_JOINTS_H36M) == 14
    assert set(range(17)) - set(metrics.PCK_JOINTS_H36M) == {0, 7, 9}  # Hip, Spine, Neck/Nose


def test_auc_hand_values():
    gt = np.zeros((2, 17, 3))
    pred = gt.copy()
    pred[0, :, 0] = 7.0  # 7 mm: correct for t = 10 .. 150 -> 29 of 31 thresholds
    # frame 1 exact: 0 < 0 is false, so 30 of 31
    assert metrics.auc(pred, gt, joint_order="3dhp") == pytest.approx((29 + 30) / 62 * 100)
    np.testing.assert_allclose(metrics.auc(pred, gt, reduction="none"), [29 / 31 * 100, 30 / 31 * 100])
    assert metrics.auc(pred / 1000, gt, unit="m") == pytest.approx((29 + 30) / 62 * 100)


@pytest.mark.parametrize("name", ["mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "pck", "auc"])
def test_torch_equals_numpy(name):
    rng = np.random.default_rng(5)
    gt = rng.normal(scale=200.0, size=(2, 6, 17, 3))
    pred = gt + rng.normal(scale=80.0, size=gt.shape)
    fn = getattr(metrics, name)
    assert fn(torch.from_numpy(pred), torch.from_numpy(gt)) == pytest.approx(fn(pred, gt), rel=1e-12)
    per_t = fn(torch.from_numpy(pred).float(), torch.from_numpy(gt).float(), reduction="none")
    per_n = fn(pred, gt, reduction="none")
    assert per_t.dtype == torch.float32 and per_t.shape == per_n.shape
    np.testing.assert_allclose(per_t.numpy(), per_n, rtol=1e-4, atol=1e-3)


def test_bad_inputs():
    x = np.zeros((2, 17, 3))
    with pytest.raises(ValueError, match="shape"):
        metrics.mpjpe(x, np.zeros((2, 16, 3)))
    with pytest.raises(ValueError, match="mask"):
        metrics.mpjpe(x, x, mask=np.array([1, 0]))
    with pytest.raises(ValueError, match="no frames"):
        metrics.mpjpe(x, x, mask=np.array([False, False]))
    with pytest.raises(ValueError, match="joint_order"):
        metrics.pck(x, x, joint_order="coco")
    with pytest.raises(ValueError, match="reduction"):
        metrics.mpjpe(x, x, reduction="sum")
