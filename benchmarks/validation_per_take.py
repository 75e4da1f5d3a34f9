"""Per-take comparison of two ``accuracy.py --val-fraction`` runs on the validation takes their run held out.

The validation table of ``accuracy.py`` pools all frames of a seed's validation takes; with 10-13 takes a
single unusual take can move the pooled number by several millimetres. This script scores each take
separately (P-Agg, det 2D; by default the same camera, frames, H, K and flip as ``accuracy.py``; ``--camera
all --eval-frames 0`` scores every camera and frame of the takes: less evaluation noise) for two variants of
the same seed and prints the paired per-take differences, so one can see whether a pooled difference comes
from most takes or from a few.

    python benchmarks/validation_per_take.py --runs-dir /work/exp_out/val/runs --seed 1 \
        --variants full,improved --data-dir /work/data_cmu \
        --out benchmarks/results/validation/per_take_seed1.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from accuracy import per_frame_errors  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", required=True, help="accuracy.py --runs-dir (holds seed<N>/<variant>/)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--variants", default="full,improved", help="two variants: A,B (differences are B - A)")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--camera", default="54138969", help='camera id, or "all" (every camera of the takes)')
    p.add_argument("--eval-frames", type=int, default=240, help="first N frames of each take (0 = all)")
    p.add_argument("--hypotheses", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", help="JSON with every take's MPJPE per variant")
    args = p.parse_args(argv)
    from posediffusion.evaluate import EvalConfig, evaluate

    variants = [v for v in args.variants.split(",") if v]
    if len(variants) != 2:
        p.error("--variants needs exactly two variants")
    takes: dict[str, dict[str, dict[str, float]]] = {}
    for variant in variants:
        config = EvalConfig(
            checkpoint=str(Path(args.runs_dir) / f"seed{args.seed}" / variant), checkpoint_name="last",
            hypotheses=args.hypotheses, steps=args.steps, flip=True, aggregations=("p-agg",),
            root_sources=("estimated",), camera_ids=None if args.camera == "all" else (args.camera,),
            seed=args.seed, split="validation",
            data={"data_dir": args.data_dir, "keypoints": "det",
                  "max_frames_per_sequence": args.eval_frames or None})
        evaluation = evaluate(config, keep=lambda _seq: True)
        (label,) = evaluation.predictions  # P-Agg
        for seq in evaluation.sequences:
            valid = np.asarray(seq.valid, dtype=bool)
            errors = per_frame_errors(evaluation.predictions[label][seq.name], seq.pose_3d)
            takes.setdefault(seq.name, {})[variant] = {"mpjpe": float(errors["mpjpe"][valid].mean()),
                                                      "p_mpjpe": float(errors["p_mpjpe"][valid].mean()),
                                                      "frames": int(valid.sum())}
    a, b = variants
    print(f"| take | frames | {a} MPJPE | {b} MPJPE | {b} - {a} | P-MPJPE {b} - {a} |")
    print("|---|---|---|---|---|---|")
    diffs = []
    for name, r in sorted(takes.items()):
        d = r[b]["mpjpe"] - r[a]["mpjpe"]
        diffs.append(d)
        print(f"| {name} | {r[a]['frames']} | {r[a]['mpjpe']:.1f} | {r[b]['mpjpe']:.1f} | {d:+.1f} | "
              f"{r[b]['p_mpjpe'] - r[a]['p_mpjpe']:+.1f} |")
    diffs_arr = np.array(diffs)
    summary = {"takes": len(diffs), "better": int((diffs_arr < 0).sum()), "worse": int((diffs_arr > 0).sum()),
               "median_difference": float(np.median(diffs_arr)), "mean_difference": float(diffs_arr.mean())}
    print(f"\n{b} better on {summary['better']} of {summary['takes']} takes; per-take difference median "
          f"{summary['median_difference']:+.1f} mm, mean {summary['mean_difference']:+.1f} mm (unweighted)")
    if args.out:
        common.write_json(Path(args.out), {"seed": args.seed, "variants": variants, "camera": args.camera,
                                           "eval_frames": args.eval_frames, "hypotheses": args.hypotheses,
                                           "steps": args.steps, "takes": takes, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
