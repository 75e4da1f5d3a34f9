"""`posediffusion demo`: lift the bundled held-out sample with the bundled CPU model and score it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "lift the bundled sample keypoints with the bundled CPU model and report its accuracy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--hypotheses", type=int, default=5, help="H samples (default 5)")
    parser.add_argument("--steps", type=int, default=5, help="K DDIM steps (default 5)")
    parser.add_argument("--no-render", action="store_true", help="skip the gif")
    parser.add_argument("--render-frames", type=int, default=100,
                        help="frames in the gif (every 2nd frame of the clip; default 100)")
    parser.add_argument("--checkpoint", default=None,
                        help="use another checkpoint instead of the bundled one")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")


def run(args: argparse.Namespace) -> int:
    from posediffusion.lift import demo

    for flag, value in (("--hypotheses", args.hypotheses), ("--steps", args.steps),
                        ("--render-frames", args.render_frames)):
        if value < 1:
            raise ValueError(f"{flag} {value}: must be at least 1")
    start = time.perf_counter()
    report = demo(Path(args.out), checkpoint=args.checkpoint, hypotheses=args.hypotheses, steps=args.steps,
                  render=not args.no_render, render_frames=args.render_frames, device=args.device)
    print(report["description"])
    print(f"{report['frames']} frames lifted with H={report['hypotheses']}, K={report['steps']}, flip, "
          f"{report['model']}")
    for name, scores in report["metrics_mm"].items():
        print(f"  {name:<40} MPJPE {scores['mpjpe']:6.1f} mm   P-MPJPE {scores['p_mpjpe']:6.1f} mm")
    for path in report["written"]:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
