import numpy as np
import pytest
import torch

from posediffusion.skeleton import (
    BODY_PARTS,
    H36M_17,
    H36M_TO_MPI,
    MPI_INF_3DHP_17,
    MPI_TO_H36M,
    Skeleton,
    flip_pose,
    root_relative,
    zero_root,
)


def test_h36m_table_from_formats_md():
    assert H36M_17.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    assert H36M_17.left == (4, 5, 6, 11, 12, 13) and H36M_17.right == (1, 2, 3, 14, 15, 16)
    assert H36M_17.root == 0 and H36M_17.num_joints == 17


def test_3dhp_reordering_maps_names():
    # Hand-written name correspondence, independent of the index table.
    pairs = {"Hip": "pelvis", "RHip": "r_hip", "RKnee": "r_knee", "RAnkle": "r_ankle", "LHip": "l_hip",
             "LKnee": "l_knee", "LAnkle": "l_ankle", "Spine": "spine", "Thorax": "neck", "Neck/Nose": "head",
             "Head": "head_top", "LShoulder": "l_shoulder", "LElbow": "l_elbow", "LWrist": "l_wrist",
             "RShoulder": "r_shoulder", "RElbow": "r_elbow", "RWrist": "r_wrist"}
    for i, name in enumerate(H36M_17.joints):
        assert MPI_INF_3DHP_17.joints[MPI_TO_H36M[i]] == pairs[name]
    x = np.arange(17)
    assert (x[list(MPI_TO_H36M)][list(H36M_TO_MPI)] == x).all()


def test_3dhp_parents_map_to_h36m_parents_for_limbs():
    # A limb's parent in 3DHP order maps to the same limb parent in H36M order.
    for h_child, h_parent in H36M_17.bones():
        m_child = MPI_TO_H36M[h_child]
        if H36M_17.joints[h_child] in ("Neck/Nose", "Head", "Thorax", "LShoulder", "RShoulder"):
            continue  # head/neck chain differs between the two rigs
        assert MPI_INF_3DHP_17.parents[m_child] == MPI_TO_H36M[h_parent]


def test_flip_permutation_is_an_involution_swapping_sides():
    perm = H36M_17.flip_permutation()
    assert (perm[perm] == np.arange(17)).all()
    assert perm[13] == 16 and perm[4] == 1 and perm[0] == 0


def test_adjacency_and_hops():
    a = H36M_17.adjacency()
    assert (a == a.T).all() and a.trace() == 17 and a.sum() == 17 + 2 * 16
    hops = H36M_17.hop_distances()
    assert hops[13, 16] == 6  # LWrist-LElbow-LShoulder-Thorax-RShoulder-RElbow-RWrist
    assert hops[3, 6] == 6 and hops[0, 10] == 4


def test_parts_cover_joints():
    part = H36M_17.part_of_joint()
    assert (part >= 0).all() and BODY_PARTS[part[13]] == "left_arm" and BODY_PARTS[part[2]] == "right_leg"


def test_invalid_skeleton_rejected():
    with pytest.raises(ValueError, match="root"):
        Skeleton("bad", ("a", "b"), (-1, -1), (), ())


def test_flip_pose_hand_values_numpy_and_torch():
    x = np.zeros((17, 3))
    x[4] = [0.3, 0.2, 5.0]  # LHip
    x[16] = [-1.0, 2.0, 3.0]  # RWrist
    x[9] = [0.5, 0.0, 1.0]  # Neck/Nose, centre joint
    expected = np.zeros((17, 3))
    expected[1] = [-0.3, 0.2, 5.0]  # LHip -> RHip, x negated
    expected[13] = [1.0, 2.0, 3.0]  # RWrist -> LWrist
    expected[9] = [-0.5, 0.0, 1.0]
    np.testing.assert_array_equal(flip_pose(x), expected)
    out = flip_pose(torch.tensor(x, dtype=torch.float32)[None])  # (1, J, 3)
    assert out.dtype == torch.float32 and torch.equal(out[0], torch.tensor(expected, dtype=torch.float32))
    y = np.random.default_rng(0).normal(size=(2, 5, 17, 2))
    np.testing.assert_array_equal(flip_pose(flip_pose(y)), y)
    with pytest.raises(ValueError):
        flip_pose(np.zeros((16, 3)))
    perm = torch.as_tensor(H36M_17.flip_permutation())  # the sampler passes the permutation itself
    assert torch.equal(flip_pose(out, perm), flip_pose(out))


def test_root_relative_and_zero_root():
    x = np.arange(2 * 17 * 3, dtype=np.float32).reshape(2, 17, 3)
    rel = root_relative(x)
    assert rel.dtype == np.float32 and (rel[:, 0] == 0).all()
    np.testing.assert_array_equal(rel[:, 5], x[:, 5] - x[:, 0])
    np.testing.assert_array_equal(root_relative(x, root=14)[:, 3], x[:, 3] - x[:, 14])  # 3DHP pelvis
    zeroed = zero_root(torch.from_numpy(x).double())
    assert zeroed.dtype == torch.float64 and (zeroed[:, 0] == 0).all()
    assert torch.equal(zeroed[:, 1:], torch.from_numpy(x[:, 1:]).double())  # other joints untouched
    assert (zero_root(x, root=3)[:, 3] == 0).all() and (zero_root(x, root=3)[:, 0] == x[:, 0]).all()
