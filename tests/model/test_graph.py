"""Tests for posediffusion.model.graph: skeleton adjacency, normalisation, per-skeleton graph convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posediffusion.model.graph import (
    AnatomicalGraph,
    SkeletalAttentionBias,
    head_slopes,
    normalize_adjacency,
    skeleton_adjacency,
)
from posediffusion.skeleton import H36M_17

J = 17


def hand_normalised_skeleton() -> np.ndarray:
    """D^-1/2 A D^-1/2 of the H36M bone graph with self-loops, built entry by entry."""
    a = np.eye(J)
    for child, parent in enumerate(H36M_17.parents):
        if parent >= 0:
            a[child, parent] = a[parent, child] = 1.0
    deg = a.sum(1)
    out = np.zeros((J, J))
    for i in range(J):
        for k in range(J):
            out[i, k] = a[i, k] / np.sqrt(deg[i] * deg[k])
    return out


def test_initial_graph_is_normalised_skeleton_adjacency():
    graph = AnatomicalGraph(H36M_17, width=8)
    a_hat = graph.learned_adjacency().detach().numpy()
    np.testing.assert_allclose(a_hat, hand_normalised_skeleton(), atol=1e-6)


def test_thorax_row_by_hand():
    # Thorax (8) has neighbours Spine 7, Neck 9, LShoulder 11, RShoulder 14 and itself: degree 5.
    a_hat = AnatomicalGraph(H36M_17, width=4).learned_adjacency().detach().numpy()
    assert a_hat[8, 8] == pytest.approx(1 / 5)
    assert a_hat[8, 9] == pytest.approx(1 / np.sqrt(5 * 3))  # Neck: self, Thorax, Head
    assert a_hat[8, 10] == 0.0


def test_k_hop_adjacency():
    a1, a2 = skeleton_adjacency(H36M_17, 1), skeleton_adjacency(H36M_17, 2)
    assert a1[0, 1] == 1 and a1[0, 2] == 0  # Hip-RHip bone, Hip-RKnee two bones apart
    assert a2[0, 2] == 1 and a2[0, 3] == 0
    assert np.array_equal(np.diag(a2), np.ones(J))
    with pytest.raises(ValueError, match="hops"):
        skeleton_adjacency(H36M_17, 0)


def test_each_skeleton_depends_only_on_its_own_neighbours():
    torch.manual_seed(0)
    graph = AnatomicalGraph(H36M_17, width=6)
    x = torch.randn(5, J, 6)  # five skeletons (e.g. B*T)
    x2 = x.clone()
    x2[3, 12] += 1.0  # perturb LElbow of skeleton 3
    changed = (graph(x2) - graph(x)).abs().sum(-1) > 1e-7  # (5, J)
    expected = torch.zeros(5, J, dtype=torch.bool)
    expected[3, [11, 12, 13]] = True  # LShoulder, LElbow, LWrist
    assert torch.equal(changed, expected)


def test_bias_free_graph_matches_hand_loop():
    torch.manual_seed(1)
    graph = AnatomicalGraph(H36M_17, width=4, hops=2, bias=False)
    with torch.no_grad():
        graph.residual.normal_(0.0, 0.3)
    x = torch.randn(3, J, 4)
    a = skeleton_adjacency(H36M_17, 2) + 0.5 * (graph.residual + graph.residual.T).detach().numpy()
    a = np.maximum(a, 0.0)
    deg = a.sum(1)
    w = graph.linear.weight.detach().numpy()
    expected = np.zeros((3, J, 4))
    for n in range(3):
        for i in range(J):
            for k in range(J):
                expected[n, i] += a[i, k] / np.sqrt(deg[i] * deg[k]) * (w @ x[n, k].numpy())
    np.testing.assert_allclose(graph(x).detach().numpy(), expected, atol=1e-5)


def test_residual_learns_non_anatomical_edges_and_stays_valid():
    graph = AnatomicalGraph(H36M_17, width=4)
    x = torch.randn(2, J, 4)
    graph(x).pow(2).sum().backward()
    # zero-initialised entries between unconnected joints (LWrist 13 - RWrist 16) still get gradient
    assert graph.residual.grad[13, 16] != 0
    with torch.no_grad():
        graph.residual[13, 16] = 0.8
        graph.residual[0, 1] = -5.0  # pushes a bone below zero: clamped
    a_hat = graph.learned_adjacency()
    assert torch.allclose(a_hat, a_hat.T)
    assert a_hat.min() >= 0 and a_hat[13, 16] > 0 and a_hat[0, 1] == 0


def test_normalize_adjacency_rows_of_regular_graph():
    a = torch.ones(4, 4)  # complete graph with self-loops: degree 4 everywhere
    assert torch.allclose(normalize_adjacency(a), torch.full((4, 4), 0.25))


def test_attention_bias_starts_at_minus_slope_times_bone_distance():
    # Bone distances by hand: Hip 0 - RHip 1 - RKnee 2 - RAnkle 3; Hip 0 - Spine 7 - Thorax 8 - LShoulder 11
    # - LElbow 12 - LWrist 13; RAnkle 3 to LWrist 13 through the hip: 3 + 5 = 8.
    bias = SkeletalAttentionBias(H36M_17, heads=4)().detach()
    np.testing.assert_allclose(head_slopes(4).numpy(), [1.0, 0.25, 1 / 16, 1 / 64])
    assert bias.shape == (4, J, J)
    assert bias[0, 0, 3] == pytest.approx(-3.0) and bias[1, 0, 3] == pytest.approx(-0.75)
    assert bias[0, 3, 13] == pytest.approx(-8.0) and bias[3, 13, 3] == pytest.approx(-8 / 64)
    assert torch.all(bias.diagonal(dim1=-2, dim2=-1) == 0)


def test_attention_bias_graph_is_the_softmax_of_the_mean_bias():
    module = SkeletalAttentionBias(H36M_17, heads=2)  # slopes 1 and 1/16
    graph = module.learned_adjacency().detach().numpy()
    hops = H36M_17.hop_distances()
    row = np.exp(-(1 + 1 / 16) / 2 * hops[8])  # Thorax's row
    np.testing.assert_allclose(graph[8], row / row.sum(), rtol=1e-5)
    np.testing.assert_allclose(graph.sum(axis=1), 1.0, rtol=1e-6)
