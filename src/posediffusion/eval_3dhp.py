"""Official MPI-INF-3DHP test scoring in Python (the MATLAB ``mpii_test_predictions`` script's tables).

Reads the test set's ``TS*/annot_data.mat`` (MATLAB v7.3 = HDF5) and scores predictions per valid frame:
ground truth = ``annot3`` (or ``univ_annot3``) minus its pelvis; predictions are taken as already
root-relative; per-joint error in mm; PCK = % of errors strictly below 150 mm over the 14 joints head_top ..
l_ankle, pooled over frames and joints; AUC = mean PCK over 0, 5, ..., 150 mm (``metrics.pck_of_errors`` /
``metrics.auc_of_errors``, the package's one PCK/AUC); MPJPE = per-joint mean over frames, averaged over
all 17 joints. Tables: one row per sequence, one per activity (frames pooled across sequences, NaN when
empty) and an "All" row pooling every valid frame. See docs/metrics.md.

Shapes: N frames of a sequence, 17 joints in 3DHP order (``skeleton.MPI_INF_3DHP_17``), millimetres.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posediffusion.io_utils import atomic_path
from posediffusion.metrics import PCK_JOINTS_3DHP, PCK_THRESHOLD_MM, auc_of_errors, pck_of_errors
from posediffusion.skeleton import H36M_TO_MPI, MPI_INF_3DHP_17, root_relative

log = logging.getLogger(__name__)

ANNOT_KEYS = ("annot3", "univ_annot3")
ROOT_3DHP = MPI_INF_3DHP_17.root  # 14, pelvis
#: Joint groups of the official tables (3DHP indices); together the 14 PCK joints (``PCK_JOINTS_3DHP``).
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (0,), "Neck": (1,), "Shoulder": (2, 5), "Elbow": (3, 6), "Wrist": (4, 7),
    "Hip": (8, 11), "Knee": (9, 12), "Ankle": (10, 13),
}
ACTIVITIES: dict[int, str] = {
    1: "Standing/Walking", 2: "Exercising", 3: "Sitting", 4: "Reaching/Crouching", 5: "On the Floor",
    6: "Sports", 7: "Miscellaneous",
}


@dataclass
class TestSequence:
    """Annotations of one 3DHP test sequence (``TS<i>/annot_data.mat``).

    Attributes:
        name: "TS1" .. "TS6".
        annot2: (N, 17, 2) pixels. annot3, univ_annot3: (N, 17, 3) mm, camera frame (absolute).
        valid: (N,) bool, frames that are scored. activity: (N,) int, 1..7 (see ``ACTIVITIES``).
    """

    name: str
    annot2: np.ndarray
    annot3: np.ndarray
    univ_annot3: np.ndarray
    valid: np.ndarray
    activity: np.ndarray


@dataclass
class ScoreRow:
    """One table row. pck/auc in percent, mpjpe in mm; NaN when ``num_frames`` is 0.

    Attributes:
        group_pck, group_auc: per joint group of ``JOINT_GROUPS``. joint_mpjpe: (17,) per joint, mm.
    """

    name: str
    num_frames: int
    pck: float
    auc: float
    mpjpe: float
    group_pck: dict[str, float]
    group_auc: dict[str, float]
    joint_mpjpe: np.ndarray

    def summary(self) -> dict[str, float | None]:
        """{"pck", "auc", "mpjpe"} with NaN as None (valid JSON)."""
        return {k: _json_number(getattr(self, k)) for k in ("pck", "auc", "mpjpe")}


@dataclass
class Evaluation3DHP:
    """Result of :func:`evaluate_predictions`.

    Attributes:
        sequences: name -> row. activities: activity name -> row (7 entries). all: pooled row.
        mean_of_sequences: plain mean of the per-sequence pck, auc, mpjpe (what the seed reports).
        annot_key: the ground truth used ("annot3" or "univ_annot3").
    """

    sequences: dict[str, ScoreRow]
    activities: dict[str, ScoreRow]
    all: ScoreRow
    mean_of_sequences: dict[str, float]
    annot_key: str


def _sequence_sort_key(name: str) -> tuple[int, str]:
    digits = re.findall(r"\d+", name)
    return (int(digits[-1]) if digits else 0, name)


def _read_mat_sequence(path: Path) -> TestSequence:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            arrays = {key: np.asarray(fh[key]) for key in
                      ("annot2", "annot3", "univ_annot3", "valid_frame", "activity_annotation")}
    except KeyError as err:
        raise ValueError(f"{path}: missing dataset ({err}); expected annot2, annot3, univ_annot3, "
                         "valid_frame, activity_annotation") from err
    except OSError as err:
        raise ValueError(f"{path}: not a MATLAB v7.3 (HDF5) file ({err})") from err
    n = arrays["valid_frame"].size
    expected = {"annot2": (n, 1, 17, 2), "annot3": (n, 1, 17, 3), "univ_annot3": (n, 1, 17, 3),
                "activity_annotation": (n, 1)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ValueError(f"{path}: '{key}' has shape {arrays[key].shape}, expected {shape}")
    return TestSequence(
        name=path.parent.name, annot2=arrays["annot2"][:, 0].astype(np.float64),
        annot3=arrays["annot3"][:, 0].astype(np.float64),
        univ_annot3=arrays["univ_annot3"][:, 0].astype(np.float64),
        valid=arrays["valid_frame"].reshape(n) == 1,
        activity=arrays["activity_annotation"].reshape(n).astype(int))


def load_test_annotations(gt_dir: str | Path) -> dict[str, TestSequence]:
    """Read every ``gt_dir/TS*/annot_data.mat`` -> {"TS1": TestSequence, ...} in sequence order.

    Raises FileNotFoundError when ``gt_dir`` holds none, ValueError naming the file on a malformed one.
    """
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"{gt_dir}: MPI-INF-3DHP test folder not found")
    paths = sorted(gt_dir.glob("TS*/annot_data.mat"), key=lambda p: _sequence_sort_key(p.parent.name))
    if not paths:
        raise FileNotFoundError(f"{gt_dir}: no TS*/annot_data.mat files")
    return {p.parent.name: _read_mat_sequence(p) for p in paths}


def predictions_from_h36m(predictions: Mapping[str, np.ndarray], unit: str = "m") -> dict[str, np.ndarray]:
    """Convert package-convention predictions (H36M-17 order, metres) to the scorer's (3DHP order, mm).

    Args: predictions: name -> (F, 17, 3). unit: "m" or "mm", the unit of the input.
    """
    if unit not in ("m", "mm"):
        raise ValueError(f"unit must be 'm' or 'mm', got {unit!r}")
    factor = 1000.0 if unit == "m" else 1.0
    return {name: check_prediction_array(name, p)[..., list(H36M_TO_MPI), :] * factor
            for name, p in predictions.items()}


def check_prediction_array(name: str, prediction: Any) -> np.ndarray:
    """``prediction`` as float64 (F, 17, 3); ``ValueError`` naming the sequence for another type or shape."""
    array = np.asarray(prediction)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name}: prediction must be a numeric (F, 17, 3) array, got dtype {array.dtype}")
    if array.ndim != 3 or array.shape[1:] != (17, 3):
        raise ValueError(f"{name}: prediction must be (F, 17, 3) (17 joints, xyz), got {array.shape}")
    return array.astype(np.float64)


#: Plausible median pose extent (largest joint distance from the pelvis), mm: people are not 5 m tall
#: around their pelvis, nor 10 mm.
PLAUSIBLE_EXTENT_MM = (10.0, 5000.0)


def pose_extent_mm(predictions: Mapping[str, np.ndarray]) -> float:
    """Median over the frames of the largest joint distance from the pelvis (3DHP order, mm; frames with
    NaN ignored); 0 without frames."""
    extents = np.concatenate([np.linalg.norm(p - p[:, ROOT_3DHP : ROOT_3DHP + 1], axis=-1).max(-1)
                              for p in predictions.values()] or [np.zeros(0)])
    extents = extents[np.isfinite(extents)]  # NaN is allowed on frames that are not scored
    return float(np.median(extents)) if len(extents) else 0.0


def check_unit(predictions: Mapping[str, np.ndarray], unit: str, source: str) -> None:
    """``ValueError`` when predictions converted to mm with ``unit`` have an implausible size for people.

    ``--unit m`` on millimetre data gives poses kilometres across; ``--unit mm`` on metre data gives poses
    of about a millimetre. All-zero predictions pass (they score, badly, but they are not a unit mistake).
    """
    extent = pose_extent_mm(predictions)
    low, high = PLAUSIBLE_EXTENT_MM
    if extent > high:
        raise ValueError(f"{source}: with --unit {unit} the poses reach a median {extent / 1000:.3g} m from "
                         f"the pelvis, not a person's size; are they millimetres (--unit mm)?")
    if 0.0 < extent < low:
        raise ValueError(f"{source}: with --unit {unit} the poses reach a median {extent:.3g} mm from the "
                         f"pelvis, not a person's size; are they metres (--unit m)?")


def _frame_errors(seq: TestSequence, prediction: np.ndarray, annot_key: str) -> np.ndarray:
    """(F_valid, 17) per-joint errors in mm for the valid frames of one sequence."""
    prediction = np.asarray(prediction, dtype=np.float64)
    n_all, n_valid = len(seq.valid), int(seq.valid.sum())
    if prediction.ndim != 3 or prediction.shape[1:] != (17, 3):
        raise ValueError(f"{seq.name}: prediction must be (F, 17, 3) mm in 3DHP order, "
                         f"got {prediction.shape}")
    if len(prediction) == n_all:
        prediction = prediction[seq.valid]
    elif len(prediction) != n_valid:
        raise ValueError(f"{seq.name}: prediction has {len(prediction)} frames; expected {n_all} "
                         f"(all frames) or {n_valid} (valid frames only)")
    if not np.isfinite(prediction).all():
        raise ValueError(f"{seq.name}: prediction contains NaN or inf on scored frames")
    gt = getattr(seq, annot_key)[seq.valid]
    if not np.isfinite(gt).all():
        raise ValueError(f"{seq.name}: ground truth '{annot_key}' contains NaN or inf on valid frames")
    return np.linalg.norm(prediction - root_relative(gt, ROOT_3DHP), axis=-1)


def _pck(errors: np.ndarray, joints: tuple[int, ...]) -> float:
    """PCK (%) pooled over every frame and joint of ``joints``; NaN without frames."""
    return float(pck_of_errors(errors[:, list(joints)].reshape(-1), PCK_THRESHOLD_MM))


def _auc(errors: np.ndarray, joints: tuple[int, ...]) -> float:
    """AUC (%) pooled over every frame and joint of ``joints``; NaN without frames."""
    return float(auc_of_errors(errors[:, list(joints)].reshape(-1)))


def score_row(name: str, errors: np.ndarray) -> ScoreRow:
    """One table row from (F, 17) per-joint errors in mm (F may be 0: every value NaN)."""
    joint_mpjpe = errors.mean(0) if len(errors) else np.full(17, math.nan)
    return ScoreRow(
        name=name, num_frames=len(errors), pck=_pck(errors, PCK_JOINTS_3DHP),
        auc=_auc(errors, PCK_JOINTS_3DHP), mpjpe=float(joint_mpjpe.mean()),
        group_pck={g: _pck(errors, j) for g, j in JOINT_GROUPS.items()},
        group_auc={g: _auc(errors, j) for g, j in JOINT_GROUPS.items()}, joint_mpjpe=joint_mpjpe)


def evaluate_predictions(annotations: Mapping[str, TestSequence], predictions: Mapping[str, np.ndarray],
                         annot_key: str = "annot3") -> Evaluation3DHP:
    """Score predictions against the test annotations with the official protocol.

    Args:
        annotations: from :func:`load_test_annotations`.
        predictions: sequence name -> (F, 17, 3) mm, 3DHP joint order, root-relative; F = all frames of the
            sequence or only its valid frames (detected by length).
        annot_key: "annot3" (default; the seed's choice, consistent with the 2D reprojection) or
            "univ_annot3" (universal, height-normalised skeleton).
    Returns: the sequence-wise, activity-wise and pooled rows.
    """
    if annot_key not in ANNOT_KEYS:
        raise ValueError(f"annot_key must be one of {ANNOT_KEYS}, got {annot_key!r}")
    missing = [name for name in annotations if name not in predictions]
    if missing:
        raise ValueError(f"predictions missing for sequence(s) {missing}")
    unknown = [name for name in predictions if name not in annotations]
    if unknown:
        raise ValueError(f"predictions for sequence(s) {unknown} that have no annotations")
    if not any(seq.valid.any() for seq in annotations.values()):
        raise ValueError(f"no valid frame to score: valid_frame is 0 in every frame of {sorted(annotations)}")
    errors = {name: _frame_errors(seq, predictions[name], annot_key) for name, seq in annotations.items()}
    activity = {name: seq.activity[seq.valid] for name, seq in annotations.items()}
    pooled_errors = np.concatenate(list(errors.values()))
    pooled_activity = np.concatenate(list(activity.values()))
    sequences = {name: score_row(name, e) for name, e in errors.items()}
    activities = {label: score_row(label, pooled_errors[pooled_activity == a])
                  for a, label in ACTIVITIES.items()}
    mean = {k: float(np.mean([getattr(row, k) for row in sequences.values()]))
            for k in ("pck", "auc", "mpjpe")}
    return Evaluation3DHP(sequences=sequences, activities=activities, all=score_row("All", pooled_errors),
                          mean_of_sequences=mean, annot_key=annot_key)


def _json_number(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _table_csv(rows: list[ScoreRow]) -> str:
    header = (["name", "frames"] + [f"pck_{g}" for g in JOINT_GROUPS] + ["pck"]
              + [f"auc_{g}" for g in JOINT_GROUPS] + ["auc"]
              + [f"mpjpe_{j}" for j in MPI_INF_3DHP_17.joints] + ["mpjpe"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        values = ([*r.group_pck.values(), r.pck, *r.group_auc.values(), r.auc, *r.joint_mpjpe, r.mpjpe])
        writer.writerow([r.name, r.num_frames] + [f"{v:.4f}" for v in values])
    return buf.getvalue()


def write_report(result: Evaluation3DHP, out_dir: str | Path) -> dict[str, Path]:
    """Write ``sequencewise.csv``, ``activitywise.csv`` (each ending with the "All" row) and ``summary.json``.

    The three files are written together (temporary files renamed only once all are complete). NaN (empty
    activity) is "nan" in the CSVs and null in the JSON. Returns: file kind -> path.
    """
    out_dir = Path(out_dir)
    paths = {"sequencewise": out_dir / "sequencewise.csv", "activitywise": out_dir / "activitywise.csv",
             "summary": out_dir / "summary.json"}
    summary: dict[str, Any] = {
        "annot_key": result.annot_key,
        "sequences": {name: row.summary() for name, row in result.sequences.items()},
        "activities": {name: row.summary() for name, row in result.activities.items()},
        "all": result.all.summary(),
        "mean_of_sequences": {k: _json_number(v) for k, v in result.mean_of_sequences.items()},
    }
    texts = {"sequencewise": _table_csv([*result.sequences.values(), result.all]),
             "activitywise": _table_csv([*result.activities.values(), result.all]),
             "summary": json.dumps(summary, indent=2) + "\n"}
    with contextlib.ExitStack() as stack:
        for kind, path in paths.items():
            stack.enter_context(atomic_path(path)).write_text(texts[kind])
    log.info("wrote 3DHP report to %s", out_dir)
    return paths


def format_tables(result: Evaluation3DHP) -> str:
    """Human-readable sequence-wise and activity-wise tables (PCK, AUC in %, MPJPE in mm)."""
    lines = [f"MPI-INF-3DHP test scoring (ground truth: {result.annot_key})"]
    for title, rows in (("Sequence", [*result.sequences.values(), result.all]),
                        ("Activity", [*result.activities.values(), result.all])):
        lines.append(f"{title:<20} {'frames':>7} {'PCK':>7} {'AUC':>7} {'MPJPE':>8}")
        lines += [f"{r.name:<20} {r.num_frames:>7d} {r.pck:>7.2f} {r.auc:>7.2f} {r.mpjpe:>8.2f}"
                  for r in rows]
        lines.append("")
    m = result.mean_of_sequences
    lines.append(f"Mean of sequences: PCK {m['pck']:.2f}  AUC {m['auc']:.2f}  MPJPE {m['mpjpe']:.2f} mm")
    return "\n".join(lines)
