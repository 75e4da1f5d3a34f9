"""Never-seen joints: the network's own inference (missing-joint input) against the 2D body prior.

A clip that never shows a joint (an upper-body framing, a hand always out of view) can be lifted two ways
(``lift.lift_track``):

- ``model``: a model with the missing-joint input (``ModelConfig.joint_mask``, trained with
  ``--joint-dropout``) gets the joint as missing (``visible`` False) and infers it from the rest of the body
  and the motion; its placeholder pixels are never read.
- ``body prior``: the joint is placed in 2D from a mean standing pose aligned to the visible joints
  (``data.body_prior.infer_never_seen``) and lifted as if measured: the only way for a model without the
  input, such as the previous bundled model.

Each scenario hides the same joints in every frame of every test take; the ``none hidden`` row is the same
checkpoint on the full input (the floor). Scores: MPJPE of the hidden joints, MPJPE and P-MPJPE of all 17
joints, in mm, pooled over frames (root-relative, P-Agg of H hypotheses, as ``lift`` returns).

Data: the CMU-derived test split (S9, S11, split by motion; one view per take) seen by the Human3.6M camera
``--camera``, ``det`` 2D (detector-like noise), the first ``--frames`` frames of each take. The scenarios
with up to 3 joints are inside the training distribution of joint dropout (1-3 limb ends never seen per
window); ``lower legs`` (4 joints) is outside it.

Sampling: ``inference.sample_sequences`` with windows of the model's length, stride T // 2 and Hann weights
(``lift_keypoints``'s merge), H / K / flip from ``lift.FAST_SAMPLING`` (H=1, K=1, flip) unless given,
sampler seed ``--seed`` for every condition.

    OMP_NUM_THREADS=1 python benchmarks/unseen_joints.py --data-dir /work/data_cmu \\
        --checkpoint RUN/best:retrained --checkpoint src/posediffusion/assets/cmu_small:previous
    python benchmarks/unseen_joints.py --smoke --checkpoint RUN/best --out-dir /tmp/uj   # seconds
    python benchmarks/unseen_joints.py --report-only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import virtual_cameras as vc  # noqa: E402

#: Scenario name -> the Human3.6M-17 joints hidden in every frame.
SCENARIOS = {
    "none hidden": (),
    "left wrist": ("LWrist",),
    "head": ("Head",),
    "right forearm": ("RElbow", "RWrist"),
    "both ankles": ("RAnkle", "LAnkle"),
    "lower legs (4, untrained)": ("RKnee", "RAnkle", "LKnee", "LAnkle"),
}
METHODS = ("model", "body prior")
SMOKE = {"frames": 54, "max_sequences": 2, "hypotheses": 1, "steps": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_lift_benchmark_arguments(p, name="unseen_joints", smoke=SMOKE)
    p.add_argument("--camera", default=vc.H36M_CAMERA, help="the Human3.6M camera whose view is lifted")
    p.add_argument("--split", choices=("test", "validation"), default="test",
                   help="test subjects, or the validation takes of a training run (choices are made there)")
    args = common.parse_lift_benchmark_arguments(p, argv, SMOKE)
    return args


def hidden_indices(names: tuple[str, ...]) -> list[int]:
    from posediffusion.skeleton import H36M_17

    return [H36M_17.joints.index(n) for n in names]


def hide(keypoints: np.ndarray, hidden: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(F, J, 2) normalised 2D with ``hidden`` never seen -> (body-prior-placed 2D, (F, J) visibility)."""
    from posediffusion.data.body_prior import infer_never_seen

    visible = np.ones(keypoints.shape[:2], bool)
    visible[:, hidden] = False
    placed = np.array(keypoints, dtype=np.float64)
    if hidden:
        guess = infer_never_seen(placed, visible, hidden)
        if guess is None:
            raise ValueError("the body prior cannot place the hidden joints of a test take")
        placed[:, hidden] = guess
    return placed.astype(np.float32), visible


def lift(model: Any, inputs: list[np.ndarray], masks: list[np.ndarray] | None,
         args: argparse.Namespace) -> list[np.ndarray]:
    """P-Agg (F, J, 3) metres of every input, merged like ``lift_keypoints`` (stride T // 2, Hann)."""
    stride = max(model.config.model.frames // 2, 1)
    return common.p_agg_estimates(model, inputs, args, stride=stride, weights="hann", visible=masks)


def scores(estimates: list[np.ndarray], takes: list, hidden: list[int]) -> dict[str, Any]:
    """Pooled MPJPE of the hidden joints and of all joints, P-MPJPE of all joints (mm)."""
    from posediffusion import metrics

    hidden_err, all_err, pa_err = [], [], []
    for est, seq in zip(estimates, takes, strict=True):
        valid = np.asarray(seq.valid, bool)
        gt = seq.pose_3d - seq.pose_3d[:, :1]
        est = est - est[:, :1]
        per_joint = np.linalg.norm(est - gt, axis=-1)[valid]  # (F, J)
        all_err.append(per_joint.mean(axis=1))
        if hidden:
            hidden_err.append(per_joint[:, hidden].mean(axis=1))
        pa_err.append(np.asarray(metrics.p_mpjpe(est, gt, reduction="none"))[valid])
    out = {"frames": int(sum(len(e) for e in all_err)),
           "mpjpe_all": round(1000 * float(np.concatenate(all_err).mean()), 2),
           "p_mpjpe_all": round(1000 * float(np.concatenate(pa_err).mean()), 2)}
    out["mpjpe_hidden"] = round(1000 * float(np.concatenate(hidden_err).mean()), 2) if hidden else None
    return out


def score_checkpoint(path: str, takes: list, args: argparse.Namespace) -> dict[str, Any]:
    from posediffusion.checkpoint import load_model

    model, checkpoint = load_model(path)
    by_model = bool(getattr(model.config.model, "joint_mask", False))
    out: dict[str, Any] = {"path": str(checkpoint.path), "joint_mask": by_model,
                           "trained_steps": checkpoint.metadata.get("progress", {}).get("global_step"),
                           "scenarios": {}}
    for scenario, names in SCENARIOS.items():
        hidden = hidden_indices(names)
        prepared = [hide(seq.keypoints_2d, hidden) for seq in takes]
        inputs = [p for p, _ in prepared]
        rows = {}
        methods = METHODS if hidden and by_model else ("body prior",)
        for method in methods:
            cpu0 = time.process_time()
            masks = [m for _, m in prepared] if method == "model" else None
            row = scores(lift(model, inputs, masks, args), takes, hidden)
            row["cpu_seconds"] = round(time.process_time() - cpu0, 1)
            key = "input" if not hidden else method
            rows[key] = row
            print(f"  {scenario:26s} {key:10s} hidden {row['mpjpe_hidden'] or float('nan'):6.1f}  "
                  f"all {row['mpjpe_all']:6.1f}  P-MPJPE {row['p_mpjpe_all']:6.1f}  "
                  f"({row['frames']} frames, {row['cpu_seconds']} CPU-s)", flush=True)
        out["scenarios"][scenario] = {"joints": list(names), "methods": rows}
    return out


def markdown(payload: dict[str, Any]) -> str:
    s = payload["settings"]
    where = "S9, S11" if s["split"] == "test" else "validation takes of S1-S8"
    lines = [f"# Never-seen joints: network inference vs 2D body prior ({payload['name']})", "",
             f"CMU-derived {s['split']} split ({where}; {s['sequences']} takes, first {s['frames']} frames, "
             f"{s['frames_total']} frames), Human3.6M camera {s['camera']}, det 2D; P-Agg of "
             f"H={s['hypotheses']}, K={s['steps']}, flip {'on' if s['flip'] else 'off'}; root-relative "
             "(ground-truth root), mm, pooled over frames. The hidden joints are missing in every frame.", "",
             "| checkpoint | scenario | method | MPJPE hidden | MPJPE all | P-MPJPE all |",
             "|---|---|---|---|---|---|"]
    for name, ck in payload["checkpoints"].items():
        for scenario, entry in ck["scenarios"].items():
            for method, row in entry["methods"].items():
                hidden = "-" if row["mpjpe_hidden"] is None else f"{row['mpjpe_hidden']:.1f}"
                lines.append(f"| {name} | {scenario} | {method} | {hidden} | {row['mpjpe_all']:.1f} | "
                             f"{row['p_mpjpe_all']:.1f} |")
    ratios = []
    for name, ck in payload["checkpoints"].items():
        for scenario, entry in ck["scenarios"].items():
            m = entry["methods"]
            if "model" in m and "body prior" in m:
                ratios.append(f"| {name} | {scenario} | "
                              f"{m['model']['mpjpe_hidden'] / m['body prior']['mpjpe_hidden']:.3f} | "
                              f"{m['model']['mpjpe_all'] / m['body prior']['mpjpe_all']:.3f} |")
    if ratios:
        lines += ["", "Ratios model / body prior (same checkpoint, same input, same sampler seed):", "",
                  "| checkpoint | scenario | hidden joints | all joints |", "|---|---|---|---|", *ratios]
    lines += ["", f"Command: `{payload['command']}`", "",
              f"Machine: {payload['machine'].get('cpu_model', '')}; run {payload.get('run_seconds', {})}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    specs = common.start_lift_benchmark(args, markdown)
    if specs is None:
        return 0
    takes = common.camera_takes(args, "det", args.split)
    payload: dict[str, Any] = {
        "name": args.name,
        "settings": {**{k: v for k, v in vars(args).items() if k not in ("report_only", "name")},
                     "sequences": len(takes), "takes": [s.name for s in takes],
                     "frames_total": int(sum(np.asarray(s.valid, bool).sum() for s in takes)),
                     "scenarios": {k: list(v) for k, v in SCENARIOS.items()}},
        "checkpoints": {}, "machine": common.machine_info(),
        "command": common.command_line()}
    common.score_checkpoints(payload, specs, lambda path: score_checkpoint(path, takes, args), out_dir,
                             markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
