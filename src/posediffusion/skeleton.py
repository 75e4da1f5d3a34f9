"""Skeleton definitions: Human3.6M-17 (the model's joint order) and MPI-INF-3DHP-17.

Joint orders, parents and left/right sets follow ``docs/formats.md`` (the VideoPose3D and P-STMO
conventions). Body-part groups feed the semantic prompts and the per-part motion features.

Pose-array operations that only need the skeleton (mirroring, root-relative coordinates, zeroing the root)
live here too, so the data pipeline, the model and the sampler share one definition. They accept numpy
arrays or torch tensors (..., J, C) and return the same kind, dtype and device; tensors are handled through
their own methods, so this module does not import torch (the keypoint readers and ``--help`` stay light).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray | torch.Tensor

BODY_PARTS = ("head", "torso", "left_arm", "right_arm", "left_leg", "right_leg")


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree of J joints.

    Attributes:
        name: identifier, e.g. ``"h36m17"``.
        joints: J joint names.
        parents: J parent indices, -1 for the root.
        left: joints on the subject's left side (order matches ``right``: ``left[i]`` mirrors ``right[i]``).
        right: joints on the subject's right side.
        parts: body part name -> joint indices (every joint in exactly one part).
    """

    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.joints)
        if len(self.parents) != n:
            raise ValueError(f"{self.name}: {len(self.parents)} parents for {n} joints")
        if sorted(self.parents).count(-1) != 1:
            raise ValueError(f"{self.name}: exactly one root (parent -1) expected")
        if len(self.left) != len(self.right) or set(self.left) & set(self.right):
            raise ValueError(f"{self.name}: left/right joint sets must be disjoint and of equal length")
        if self.parts:
            covered = sorted(j for idx in self.parts.values() for j in idx)
            if covered != list(range(n)):
                raise ValueError(f"{self.name}: body parts must cover every joint exactly once")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def root(self) -> int:
        return self.parents.index(-1)

    def bones(self) -> list[tuple[int, int]]:
        """(child, parent) pairs, one per non-root joint."""
        return [(j, p) for j, p in enumerate(self.parents) if p >= 0]

    def flip_permutation(self) -> np.ndarray:
        """Index array that swaps left and right joints: ``x_flipped = x[..., perm, :]``."""
        perm = np.arange(self.num_joints)
        perm[list(self.left)] = self.right
        perm[list(self.right)] = self.left
        return perm

    def part_of_joint(self) -> np.ndarray:
        """(J,) index into ``BODY_PARTS`` for each joint."""
        out = np.full(self.num_joints, -1, dtype=np.int64)
        for k, part in enumerate(BODY_PARTS):
            out[list(self.parts[part])] = k
        return out

    def adjacency(self, self_loops: bool = True) -> np.ndarray:
        """(J, J) symmetric 0/1 adjacency of the bone graph, with self-loops by default."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for c, p in self.bones():
            a[c, p] = a[p, c] = 1.0
        if self_loops:
            a += np.eye(self.num_joints, dtype=np.float32)
        return a

    def hop_distances(self) -> np.ndarray:
        """(J, J) number of bones on the path between every pair of joints (tree distance)."""
        n = self.num_joints
        dist = np.full((n, n), np.inf)
        np.fill_diagonal(dist, 0.0)
        for c, p in self.bones():
            dist[c, p] = dist[p, c] = 1.0
        for k in range(n):  # Floyd-Warshall; J = 17
            dist = np.minimum(dist, dist[:, k : k + 1] + dist[k : k + 1, :])
        return dist.astype(np.int64)


H36M_17 = Skeleton(
    name="h36m17",
    joints=(
        "Hip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "Spine", "Thorax",
        "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
    parts={
        "head": (9, 10),
        "torso": (0, 7, 8),
        "left_arm": (11, 12, 13),
        "right_arm": (14, 15, 16),
        "left_leg": (4, 5, 6),
        "right_leg": (1, 2, 3),
    },
)

MPI_INF_3DHP_17 = Skeleton(
    name="3dhp17",
    joints=(
        "head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
        "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "pelvis", "spine", "head",
    ),
    parents=(1, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1),
    left=(5, 6, 7, 11, 12, 13),
    right=(2, 3, 4, 8, 9, 10),
    parts={
        "head": (0, 16),
        "torso": (1, 14, 15),
        "left_arm": (5, 6, 7),
        "right_arm": (2, 3, 4),
        "left_leg": (11, 12, 13),
        "right_leg": (8, 9, 10),
    },
)

#: ``h36m_pose = mpi_pose[..., MPI_TO_H36M, :]`` (``docs/formats.md``).
MPI_TO_H36M: tuple[int, ...] = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
#: Inverse permutation: ``mpi_pose = h36m_pose[..., H36M_TO_MPI, :]``.
H36M_TO_MPI: tuple[int, ...] = tuple(int(i) for i in np.argsort(MPI_TO_H36M))
#: The 32-joint Human3.6M original -> the 17 joints above.
H36M_32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

SKELETONS = {s.name: s for s in (H36M_17, MPI_INF_3DHP_17)}


def flip_pose(x: Array, mirror: Skeleton | Array = H36M_17) -> Array:
    """Mirror poses left-right: negate channel 0 (x) and swap left/right joints.

    Valid for camera-frame 3D and for normalised 2D (whose x is centred on the image centre).

    Args:
        x: (..., J, C) numpy array or torch tensor, C >= 1.
        mirror: a skeleton (gives J and the left/right pairs) or its (J,) ``flip_permutation()``
            (numpy or torch; the sampler passes a tensor already on the right device).

    Returns:
        (..., J, C) new array of the same kind, dtype and device; applying it twice gives ``x`` back.
    """
    perm = mirror.flip_permutation() if isinstance(mirror, Skeleton) else mirror
    if x.shape[-2] != len(perm):
        raise ValueError(f"flip_pose: expected {len(perm)} joints on axis -2, got shape {tuple(x.shape)}")
    sign = _ones(x, x.shape[-1])  # (C,)
    sign[0] = -1.0
    return x[..., perm, :] * sign


def root_relative(x: Array, root: int = 0) -> Array:
    """(..., J, C) -> the same with joint ``root`` subtracted from every joint (root at the origin).

    Numpy or torch; ``root`` is ``Skeleton.root`` (0 for Human3.6M-17, 14 for 3DHP-17).
    """
    return x - x[..., root : root + 1, :]


def zero_root(x: Array, root: int = 0) -> Array:
    """(..., J, C) -> the same with joint ``root`` set to 0 and the other joints untouched.

    Unlike :func:`root_relative` this does not move the other joints: the network's root output is
    meaningless (poses are root-relative), so it is masked rather than subtracted.
    """
    keep = _ones(x, (x.shape[-2], 1))  # (J, 1)
    keep[root] = 0.0
    return x * keep


def _ones(like: Array, shape: int | tuple[int, ...]) -> Array:
    """Ones of ``shape`` in ``like``'s kind, dtype (and device, for a tensor)."""
    return np.ones(shape, dtype=like.dtype) if isinstance(like, np.ndarray) else like.new_ones(shape)


def median_thigh(positions: np.ndarray) -> float:
    """Median hip-knee length of (F, 17, 3) Human3.6M-17 positions, both legs pooled, in their unit."""
    return float(np.median(np.linalg.norm(positions[:, [2, 5]] - positions[:, [1, 4]], axis=-1)))
