"""Skeleton definitions: Human3.6M-17 (the model's joint order) and MPI-INF-3DHP-17.

Joint orders, parents and left/right sets follow ``docs/FORMATS.md`` (the VideoPose3D and P-STMO
conventions). Body-part groups feed the semantic prompts and the per-part motion features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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

#: ``h36m_pose = mpi_pose[..., MPI_TO_H36M, :]`` (FORMATS.md).
MPI_TO_H36M: tuple[int, ...] = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
#: Inverse permutation: ``mpi_pose = h36m_pose[..., H36M_TO_MPI, :]``.
H36M_TO_MPI: tuple[int, ...] = tuple(int(i) for i in np.argsort(MPI_TO_H36M))
#: The 32-joint Human3.6M original -> the 17 joints above.
H36M_32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

SKELETONS = {s.name: s for s in (H36M_17, MPI_INF_3DHP_17)}
