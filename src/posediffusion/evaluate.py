"""Protocol evaluation of a checkpoint: full sequences, every DDIM step, every aggregation, per action.

Human3.6M protocol (``docs/evaluation.md``): each test sequence (subject, take, camera) is lifted in full
with windows of the model's length (``data.windows``: starts every ``stride`` frames, the last window ending
on the last frame, overlaps averaged), all windows batched together. For every DDIM step and every
aggregation, MPJPE, N-MPJPE, MPJVE (and P-MPJPE with ``p2``) are averaged over the frames of each action
(takes merged, ``Sequence.action_group``; all subjects and cameras pooled) and then over actions. The
MPI-INF-3DHP test sequences are their own "actions", so the mean over actions is the seed's mean of the six
per-sequence values; only frames marked valid are scored. Units: millimetres (MPJVE: mm per frame).

Aggregations: P-Agg (mean of H hypotheses), J-Agg per root source (``estimated`` from the 2D input and the
intrinsics, ``ground_truth`` = the GT root trajectory, labelled "GT root", ``weak_perspective`` camera-free),
and the ORACLES J-Best / P-Best that pick hypotheses with the ground truth.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posediffusion import eval_3dhp
from posediffusion import metrics as m
from posediffusion.aggregate import (
    estimate_label,
    hypothesis_spread,
    joint_aggregate,
    joint_best,
    pose_aggregate,
    pose_best,
)
from posediffusion.camera import image_coordinates
from posediffusion.checkpoint import load_model
from posediffusion.config import DataConfig, EvalConfig, build_config
from posediffusion.data.selection import load_sequences, truncate_sequence, validation_takes
from posediffusion.data.windows import WindowDataset
from posediffusion.inference import sample_sequences
from posediffusion.io_utils import save_npz_atomic, write_text_atomic
from posediffusion.render import render_animation
from posediffusion.runtime import resolve_device

log = logging.getLogger(__name__)

METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve")
METRIC_LABELS = {"mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "n_mpjpe": "N-MPJPE", "mpjve": "MPJVE"}


# ------------------------------------------------------------------------------------------ prediction


def predict_sequences(model: torch.nn.Module, sequences: list, *, hypotheses: int, steps: int, flip: bool,
                      stride: int | None, batch_size: int, generator: torch.Generator,
                      eta: float | None = None, antithetic: bool | None = None
                      ) -> Iterator[tuple[int, torch.Tensor]]:
    """Lift whole sequences: yields ``(index, hyps)`` per sequence, in order, as soon as it is complete.

    Windows of all sequences are batched together (``batch_size`` windows per sampler call); overlapping
    windows are averaged (``inference.sample_sequences``, uniform weights), every DDIM step kept.

    Returns (per sequence): hyps (K, H, F, J, 3) metres, root-relative, on the model's device.
    """
    for i, merged in sample_sequences(model, [s.keypoints_2d for s in sequences], hypotheses=hypotheses,
                                      steps=steps, flip=flip, generator=generator, stride=stride,
                                      batch_size=batch_size, eta=eta, return_all_steps=True,
                                      antithetic=antithetic):
        yield i, merged.result("samples").permute(1, 2, 0, 3, 4)  # (F, K, H, J, 3) -> (K, H, F, J, 3)


def window_mpjpe(model: torch.nn.Module, sequences: list, *, hypotheses: int = 1, steps: int = 2,
                 max_windows: int = 128, batch_size: int = 64, seed: int = 0) -> float:
    """Quick selection score: P-Agg MPJPE (mm) over the real frames of evenly spaced windows, no flip.

    Used for per-epoch validation; ``max_windows`` bounds the cost.
    """
    model.eval()
    dataset = WindowDataset(sequences, model.config.model.frames)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(max_windows, len(dataset))).round().astype(int))
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    total, count = 0.0, 0
    for first in range(0, len(picks), batch_size):
        items = [dataset[int(i)] for i in picks[first : first + batch_size]]
        x2d = torch.stack([it["x2d"] for it in items]).to(device)
        gt = torch.stack([it["x3d"] for it in items]).to(device)
        valid = torch.stack([it["valid"] for it in items]).to(device)  # (B, T)
        pred = model.sample(x2d, num_hypotheses=hypotheses, steps=steps, flip=False,
                            generator=generator).mean(1)  # (B, T, J, 3)
        errors = torch.linalg.vector_norm(pred - gt, dim=-1).mean(-1)  # (B, T)
        total, count = total + float(errors[valid].sum()), count + int(valid.sum())
    return total / max(count, 1) * 1000.0


# ----------------------------------------------------------------------------------------- aggregation


def aggregation_labels(config: EvalConfig) -> list[tuple[str, str, str | None]]:
    """(label, aggregation, root source) of every estimate to score, in report order.

    J-Agg gives one estimate per root source of ``config``; labels are ``aggregate.estimate_label``'s.
    """
    labels = []
    for aggregation in config.aggregations:
        roots = config.root_sources if aggregation == "j-agg" else (None,)
        labels += [(estimate_label(aggregation, root), aggregation, root) for root in roots]
    return labels


def aggregate_hypotheses(hyps: torch.Tensor, sequence: Any, aggregation: str,
                         root_source: str | None) -> torch.Tensor:
    """One estimate per step from a sequence's hypotheses: (K, H, F, J, 3) -> (K, F, J, 3) metres."""
    gt = None if sequence.pose_3d is None else torch.from_numpy(sequence.pose_3d).to(hyps)
    if aggregation == "p-agg":
        return pose_aggregate(hyps)
    if aggregation == "j-agg":
        root = None if sequence.trajectory is None else torch.from_numpy(sequence.trajectory).to(hyps)
        keypoints = torch.from_numpy(sequence.keypoints_2d).to(hyps)
        return joint_aggregate(hyps, keypoints, sequence.camera, root=root, root_source=root_source)
    if gt is None:
        raise ValueError(f"{sequence.name}: oracle {aggregation} needs ground truth")
    return joint_best(hyps, gt) if aggregation == "j-best" else pose_best(hyps, gt)


# ------------------------------------------------------------------------------------------- scoring


class ProtocolAccumulator:
    """Sums of per-frame errors per (estimate label, metric, action), each a (K,) vector over steps."""

    def __init__(self, metrics: tuple[str, ...]) -> None:
        self.metrics = metrics
        self.sums: dict[tuple[str, str, str], torch.Tensor] = {}
        self.counts: dict[tuple[str, str, str], int] = defaultdict(int)

    def add(self, label: str, action: str, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> None:
        """pred (K, F, J, 3), gt (F, J, 3) metres, valid (F,) bool."""
        gt_k = gt.expand_as(pred)
        for metric in self.metrics:
            if metric == "mpjve":
                if pred.shape[1] < 2:
                    continue
                per_frame, mask = m.mpjve(pred, gt_k, reduction="none"), valid[1:] & valid[:-1]
            else:
                per_frame, mask = getattr(m, metric)(pred, gt_k, reduction="none"), valid  # (K, F)
            key = (label, metric, action)
            total = per_frame[:, mask].double().sum(1).cpu() * 1000.0  # (K,) mm
            self.sums[key] = self.sums.get(key, torch.zeros_like(total)) + total
            self.counts[key] += int(mask.sum())

    def results(self) -> dict[str, dict[str, Any]]:
        """label -> metric -> {"per_step": [K] mean over actions, "per_action": {action: [K]}} in mm."""
        out: dict[str, dict[str, Any]] = {}
        for (label, metric, action), total in sorted(self.sums.items()):
            count = self.counts[(label, metric, action)]
            if count == 0:
                continue
            entry = out.setdefault(label, {}).setdefault(metric, {"per_action": {}})
            entry["per_action"][action] = (total / count).tolist()
        for per_metric in out.values():
            for entry in per_metric.values():
                values = np.array(list(entry["per_action"].values()))  # (A, K)
                entry["per_step"] = values.mean(0).tolist()
                entry["final"] = entry["per_step"][-1]
        return out


# ------------------------------------------------------------------------------------------ the run


def resolve_data(config: EvalConfig, run_config: dict[str, Any]) -> DataConfig:
    """The checkpoint's DataConfig with ``config.data`` overrides applied (unknown keys: ``ValueError``)."""
    stored = dict(run_config.get("data") or {})
    unknown = sorted(set(config.data) - {f.name for f in dataclasses.fields(DataConfig)})
    if unknown:
        raise ValueError(f"unknown data setting(s) {unknown}")
    data = build_config(DataConfig, {**stored, **config.data}, "data settings")
    return dataclasses.replace(data, subjects_test=data.with_default_subjects().subjects_test)


def load_split(config: EvalConfig, data: DataConfig, run_config: dict[str, Any]) -> list:
    """The sequences of ``config.split``: the test subjects', or the validation takes the checkpoint's run
    held out (the training split recomputed from the run's stored data settings, ``val_fraction`` and
    ``val_seed`` or else ``seed``, on the data found at ``data.data_dir``)."""
    if config.split == "test":
        return load_sequences(data, "test", camera_ids=config.camera_ids)
    stored = dict(run_config.get("data") or {})
    fraction = float(stored.get("val_fraction") or 0.0)
    if fraction <= 0:
        raise ValueError(f"{config.checkpoint}: its training run held out no validation takes "
                         "(val_fraction 0); train with --val-fraction > 0 to evaluate --split validation")
    kept = ("subjects_train", "actions", "cameras")
    run_data = dataclasses.replace(data, max_frames_per_sequence=None, val_seed=stored.get("val_seed"),
                                   **{k: stored[k] for k in kept if k in stored})
    sequences = load_sequences(run_data, "train")  # whole takes, every camera: loaded once
    run_frames = stored.get("max_frames_per_sequence")  # the split counted the frames the run had
    as_trained = [truncate_sequence(s, run_frames) for s in sequences] if run_frames else sequences
    # val_seed absent (older runs): the run's seed
    takes = validation_takes(as_trained, fraction, run_data.split_seed(int(run_config.get("seed", 0))))
    held_out = [s for s in sequences if (s.subject, s.action) in takes]  # cameras: select_sequences
    frames = data.max_frames_per_sequence
    return [truncate_sequence(s, frames) for s in held_out] if frames else held_out


def select_sequences(sequences: list, config: EvalConfig) -> list:
    """Apply the camera and count subsets of ``config``."""
    if config.camera_ids is not None:
        sequences = [s for s in sequences if str(s.camera_id) in set(config.camera_ids)]
        if not sequences:
            raise ValueError(f"no {config.split} sequence is seen by cameras {list(config.camera_ids)}")
    if config.max_sequences is not None:
        sequences = sequences[: config.max_sequences]
    return sequences


@dataclass
class Evaluation:
    """What :func:`evaluate` returns: the JSON-ready report and, per sequence, the final-step estimates."""

    report: dict[str, Any]
    predictions: dict[str, dict[str, np.ndarray]]
    """label -> sequence name -> (F, J, 3) metres at the last DDIM step."""
    spread: dict[str, np.ndarray]
    """sequence name -> (F, J) metres, mean distance of the hypotheses from P-Agg (last step)."""
    sequences: list
    hypotheses: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """sequence name -> (H, F, J, 3) metres at the last DDIM step (only with ``keep_hypotheses``)."""


def evaluate(config: EvalConfig, keep: Callable[[Any], bool] | None = None,
             keep_hypotheses: bool = False) -> Evaluation:
    """Evaluate a checkpoint as configured; see the module docstring.

    Args:
        config: the settings.
        keep: ``keep(sequence)`` says whose final-step estimates to return (3DHP export, rendering,
            ``save_predictions``); ``None`` keeps none (they are large for a full Human3.6M test set).
        keep_hypotheses: also return every hypothesis of the kept sequences (H times the memory).
    """
    device = resolve_device(config.device)
    ema = None if config.weights == "auto" else config.weights == "ema"
    model, checkpoint = load_model(config.checkpoint, config.checkpoint_name, ema=ema, device=device)
    data = resolve_data(config, checkpoint.run_config)
    sequences = select_sequences(load_split(config, data, checkpoint.run_config), config)
    metrics = tuple(m for m in METRICS if m != "p_mpjpe" or config.p2)
    labels = aggregation_labels(config)
    accumulator = ProtocolAccumulator(metrics)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    predictions: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    spread: dict[str, np.ndarray] = {}
    all_hypotheses: dict[str, np.ndarray] = {}
    frames_scored = 0
    for index, hyps in predict_sequences(model, sequences, hypotheses=config.hypotheses, steps=config.steps,
                                         flip=config.flip, stride=config.stride,
                                         batch_size=config.batch_size, generator=generator, eta=config.eta,
                                         antithetic=False if config.independent_hypotheses else None):
        seq = sequences[index]
        gt = torch.from_numpy(seq.pose_3d).to(hyps)
        valid = torch.from_numpy(np.asarray(seq.valid, dtype=bool)).to(hyps.device)
        frames_scored += int(valid.sum())
        keep_predictions = keep is not None and keep(seq)
        for label, aggregation, root_source in labels:
            estimate = aggregate_hypotheses(hyps, seq, aggregation, root_source)  # (K, F, J, 3)
            accumulator.add(label, seq.action_group, estimate, gt, valid)
            if keep_predictions:
                predictions[label][seq.name] = estimate[-1].cpu().numpy()
        if keep_predictions:
            spread[seq.name] = hypothesis_spread(hyps[-1]).cpu().numpy()  # (F, J) around P-Agg
            if keep_hypotheses:
                all_hypotheses[seq.name] = hyps[-1].cpu().numpy()  # (H, F, J, 3)
        log.info("evaluated %s (%d/%d)", seq.name, index + 1, len(sequences))
    report = build_report(config, checkpoint, data, sequences, accumulator.results(), labels, frames_scored)
    return Evaluation(report, dict(predictions), spread, sequences, all_hypotheses)


def build_report(config: EvalConfig, checkpoint: Any, data: DataConfig, sequences: list,
                 results: dict[str, Any], labels: list, frames_scored: int) -> dict[str, Any]:
    """The JSON report: every setting that shaped the numbers, then the numbers."""
    selection = checkpoint.metadata.get("selection", {})
    model_config = checkpoint.model_config
    return {
        "settings": {
            "checkpoint": str(checkpoint.path),
            "checkpoint_kind": checkpoint.metadata.get("kind"),
            "weights": checkpoint.metadata.get("weights"),
            "preset": checkpoint.metadata.get("preset"),
            "model": model_config,
            "trained_epochs": checkpoint.metadata.get("progress", {}).get("epoch"),
            "trained_steps": checkpoint.metadata.get("progress", {}).get("global_step"),
            "selection_split": selection.get("split"),
            "select_on_test": bool(selection.get("select_on_test", False)),
            "hypotheses": config.hypotheses,
            "steps": config.steps,
            "eta": config.eta if config.eta is not None else model_config.get("diffusion", {}).get("eta"),
            "antithetic": (not config.independent_hypotheses
                           and bool(model_config.get("diffusion", {}).get("antithetic", False))),
            "flip": config.flip,
            "window_frames": model_config.get("model", {}).get("frames"),
            "window_stride": config.stride or model_config.get("model", {}).get("frames"),
            "root_sources": list(config.root_sources),
            "aggregations": [label for label, _, _ in labels],
            "data": dataclasses.asdict(data),
            "split": config.split,
            "camera_ids": None if config.camera_ids is None else list(config.camera_ids),
            "max_sequences": config.max_sequences,
            "sequences": len(sequences),
            "frames_scored": frames_scored,
            "seed": config.seed,
        },
        "protocol": f"per action: mean over all scored frames of the {config.split} sequences (takes "
                    "merged); reported value: mean over actions; millimetres (MPJVE: mm/frame); per_step[k] "
                    "is DDIM step k+1; labels marked ORACLE use the ground truth",
        "results": {label: results[label] for label, _, _ in labels if label in results},
    }


def format_report(report: dict[str, Any], per_action: bool = False) -> str:
    """Plain-text tables of a report: final step per estimate, MPJPE per DDIM step, optional per action."""
    s, results = report["settings"], report["results"]
    metrics = [m for m in METRICS if any(m in r for r in results.values())]
    kind = (f"best on the {s['selection_split']} split" if s["checkpoint_kind"] == "best"
            else f"{s['checkpoint_kind']} checkpoint")
    scored = (f"subjects {s['data']['subjects_test']}" if s.get("split", "test") == "test"
              else f"VALIDATION takes of {s['data']['subjects_train']}")
    head = (f"checkpoint {s['checkpoint']} ({s['weights']} weights, preset {s['preset']}, {kind}"
            f"{' [TEST SPLIT SELECTION]' if s['select_on_test'] else ''})\n"
            f"data {s['data']['dataset']}/{s['data']['keypoints']} {scored}: "
            f"{s['sequences']} sequences, {s['frames_scored']} frames; H={s['hypotheses']} K={s['steps']} "
            f"eta={s['eta']} flip={s['flip']}{' antithetic' if s.get('antithetic') else ''} "
            f"window {s['window_frames']}/{s['window_stride']}\n")
    width = max(len(label) for label in results) if results else 10
    lines = [head, f"{'estimate':<{width}}  " + "  ".join(f"{METRIC_LABELS[m]:>8}" for m in metrics)]
    for label, values in results.items():
        lines.append(f"{label:<{width}}  " + "  ".join(f"{values[m]['final']:8.2f}" if m in values else
                                                        f"{'-':>8}" for m in metrics))
    lines += ["", "MPJPE (mm) per DDIM step", f"{'estimate':<{width}}  " + "  ".join(
        f"{'k=' + str(k + 1):>7}" for k in range(s["steps"]))]
    for label, values in results.items():
        lines.append(f"{label:<{width}}  " + "  ".join(f"{v:7.2f}" for v in values["mpjpe"]["per_step"]))
    if per_action:
        lines += ["", "MPJPE (mm) per action, last step"]
        for label, values in results.items():
            row = ", ".join(f"{a} {v[-1]:.1f}" for a, v in values["mpjpe"]["per_action"].items())
            lines.append(f"{label}: {row}")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the JSON report atomically."""
    write_text_atomic(path, json.dumps(report, indent=2))
    return Path(path)


#: Version of the ``--save-predictions`` npz layout (docs/evaluation.md); bumped when it changes.
PREDICTIONS_LAYOUT = 1


def save_predictions(evaluation: Evaluation, path: str | Path) -> Path:
    """Write every kept sequence's estimates, ground truth and settings to one npz another tool can score.

    Layout (no pickled objects, so ``np.load(path)`` reads it with ``allow_pickle=False``): per-sequence
    labels ``names``, ``subjects``, ``actions``, ``action_groups``, ``cameras`` (S,) and ``offsets``
    (S + 1,), so sequence i is rows ``offsets[i]:offsets[i + 1]`` of the frame arrays ``gt`` (N, J, 3),
    ``valid`` (N,) and one ``pred_<key>`` (N, J, 3) per estimate (``estimate_keys`` / ``estimate_labels``
    (E,), e.g. ``p_agg`` / "P-Agg"); ``hypotheses`` (N, H, J, 3) when kept. Metres, root-relative, camera
    frame, Human3.6M-17 joint order, last DDIM step. ``settings`` is the report's settings as JSON.
    """
    sequences = [s for s in evaluation.sequences if s.name in evaluation.spread]
    if not sequences:
        raise ValueError(f"{path}: no predictions were kept to save")
    labels = list(evaluation.predictions)
    keys = [_slug(label) for label in labels]
    frames = [s.num_frames for s in sequences]
    arrays: dict[str, Any] = {
        "layout": np.int64(PREDICTIONS_LAYOUT),
        "settings": np.str_(json.dumps(evaluation.report["settings"])),
        **{field: np.array([str(getattr(s, attr)) for s in sequences]) for field, attr in (
            ("names", "name"), ("subjects", "subject"), ("actions", "action"),
            ("action_groups", "action_group"), ("cameras", "camera_id"))},
        "offsets": np.concatenate([[0], np.cumsum(frames)]).astype(np.int64),
        "gt": np.concatenate([s.pose_3d for s in sequences]).astype(np.float32),  # (N, J, 3)
        "valid": np.concatenate([np.asarray(s.valid, dtype=bool) for s in sequences]),  # (N,)
        "estimate_keys": np.array(keys), "estimate_labels": np.array(labels),
    }
    for key, label in zip(keys, labels, strict=True):
        arrays[f"pred_{key}"] = np.concatenate([evaluation.predictions[label][s.name] for s in sequences]
                                               ).astype(np.float32)  # (N, J, 3)
    if evaluation.hypotheses:  # (H, F, J, 3) per sequence -> (N, H, J, 3)
        arrays["hypotheses"] = np.concatenate([evaluation.hypotheses[s.name].transpose(1, 0, 2, 3)
                                               for s in sequences]).astype(np.float32)
    save_npz_atomic(path, **arrays)
    return Path(path)


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def export_3dhp(evaluation: Evaluation, out_dir: str | Path, primary: str = "P-Agg") -> dict[str, Path]:
    """Write 3DHP predictions for eval-3dhp: one npz per non-oracle estimate, ``PRED.npz`` = ``primary``.

    Each file maps "TS1".. -> (F, 17, 3) float mm, 3DHP joint order, root-relative, last DDIM step.
    """
    out_dir, written = Path(out_dir), {}
    for label, per_sequence in evaluation.predictions.items():
        if "ORACLE" in label:
            continue
        by_name = {seq.subject: per_sequence[seq.name] for seq in evaluation.sequences}
        predictions = eval_3dhp.predictions_from_h36m(by_name, unit="m")
        arrays = {k: v.astype(np.float32) for k, v in predictions.items()}
        path = out_dir / f"PRED_{_slug(label)}.npz"
        save_npz_atomic(path, **arrays)
        written[label] = path
        if label == primary:
            save_npz_atomic(out_dir / "PRED.npz", **arrays)
            written["PRED"] = out_dir / "PRED.npz"
    return written


def score_3dhp(prediction_file: Path, gt_dir: str | Path, out_dir: str | Path,
               annot_key: str = "annot3") -> dict[str, Any]:
    """Official 3DHP tables for a PRED npz (only the predicted sequences are scored; the summary says so)."""
    with np.load(prediction_file) as npz:
        predictions = {k: npz[k] for k in npz.files}
    annotations = eval_3dhp.load_test_annotations(gt_dir)
    missing = sorted(set(predictions) - set(annotations))
    if missing:
        raise ValueError(f"{gt_dir}: no annotations for predicted sequence(s) {missing}")
    annotations = {k: v for k, v in annotations.items() if k in predictions}
    result = eval_3dhp.evaluate_predictions(annotations, predictions, annot_key=annot_key)
    eval_3dhp.write_report(result, out_dir)
    return {"tables": eval_3dhp.format_tables(result), "sequences": sorted(annotations),
            "mean_of_sequences": result.mean_of_sequences, "annot_key": annot_key}


def render_sequence(evaluation: Evaluation, subject: str, action: str, camera: str, out_path: str | Path,
                    label: str = "P-Agg", max_frames: int | None = None) -> Path:
    """Render the REAL prediction of one evaluated sequence (2D input, estimate, GT, hypothesis spread).

    ``camera`` is a camera id or an index into the subject's cameras in load order.
    """
    candidates = [s for s in evaluation.sequences if s.subject == subject and s.action == action]
    by_index = camera.isdigit() and not any(s.camera_id == camera for s in candidates)
    if by_index and int(camera) < len(candidates):
        candidates = [candidates[int(camera)]]
    else:
        candidates = [s for s in candidates if s.camera_id == camera]
    if not candidates:
        names = sorted({f"{s.subject}/{s.action}" for s in evaluation.sequences})[:10]
        raise ValueError(f"no evaluated sequence {subject}/{action}/camera {camera}; evaluated: {names}...")
    seq = candidates[0]
    if label not in evaluation.predictions:
        raise ValueError(f"no {label!r} estimate; evaluated: {sorted(evaluation.predictions)}")
    cam = seq.camera or {}
    size = (int(cam["res_w"]), int(cam["res_h"])) if "res_w" in cam else None
    keypoints = image_coordinates(seq.keypoints_2d, *size) if size else seq.keypoints_2d
    return render_animation(keypoints, evaluation.predictions[label][seq.name], out_path,
                            ground_truth=seq.pose_3d, uncertainty=evaluation.spread.get(seq.name),
                            fps=seq.fps, image_size=size, title=f"{seq.name} - {label}",
                            max_frames=max_frames)
