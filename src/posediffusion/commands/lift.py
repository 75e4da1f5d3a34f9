"""`posediffusion lift INPUT --out OUT.npz`: lift a 2D keypoint file of any length to 3D."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys

HELP = "lift a 2D keypoint file (COCO/Halpe/OpenPose/MediaPipe JSON, npz, csv) to 3D"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posediffusion.data.keypoint_formats import FORMATS  # torch-free, so --help stays fast

    parser.add_argument("input", help="keypoint file, or a folder of OpenPose *_keypoints.json files")
    parser.add_argument("--out", required=True, help="output npz (pose_3d, uncertainty, keypoints_2d, ...)")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS), help="input format")
    parser.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"), default=None,
                        help="video size in pixels, whole numbers (required unless the file stores it)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled model)")
    parser.add_argument("--hypotheses", "-num_proposals", type=int, default=5, help="H samples (default 5)")
    parser.add_argument("--steps", "-sampling_timesteps", type=int, default=5,
                        help="K DDIM steps (default 5)")
    parser.add_argument("--aggregation", choices=("p-agg", "j-agg", "pose", "joint"), default="p-agg",
                        metavar="{p-agg,j-agg}",
                        help="p-agg = P-Agg, mean of hypotheses (default); j-agg = J-Agg without a camera "
                             "(weak perspective); the old names pose and joint still work")
    parser.add_argument("--no-flip", action="store_true", help="disable flip test-time augmentation")
    parser.add_argument("--all-hypotheses", action="store_true", help="also store all hypotheses")
    parser.add_argument("--min-confidence", type=float, default=0.3, help="below this a joint is missing")
    parser.add_argument("--person", type=int, default=None, help="person index per frame (default: best)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write JSON")
    parser.add_argument("--csv", default=None, metavar="PATH", help="also write CSV (frame,joint,x,y,z,unc)")
    parser.add_argument("--render", default=None, metavar="OUT.gif|.mp4", help="also render an animation")


#: output flag -> accepted suffixes
OUTPUTS = {"--out": (".npz",), "--json": (".json",), "--csv": (".csv",), "--render": (".gif", ".mp4")}


def check_outputs(args: argparse.Namespace) -> dict[str, str]:
    """Every output target, checked before anything is lifted: flag -> path as given.

    Suffix, not a folder/device/FIFO, parent a folder or creatable (``io_utils.check_output_path``), and no
    two flags naming the same file. ``ValueError`` naming the flag.
    """
    from posediffusion.io_utils import check_output_path

    given = {flag: getattr(args, flag[2:]) for flag in OUTPUTS if getattr(args, flag[2:])}
    seen: dict[str, str] = {}
    for flag, path in given.items():
        target = str(check_output_path(path, flag=flag, suffixes=OUTPUTS[flag]))
        if target in seen:
            raise ValueError(f"{flag} {path}: the same file as {seen[target]}")
        seen[target] = flag
    return given


def check_options(args: argparse.Namespace) -> None:
    """Numeric flags that the lifter would otherwise reject deep inside (or accept silently)."""
    for flag, value in (("--hypotheses", args.hypotheses), ("--steps", args.steps)):
        if value < 1:
            raise ValueError(f"{flag} {value}: must be at least 1")
    if not (math.isfinite(args.min_confidence) and 0.0 <= args.min_confidence <= 1.0):
        raise ValueError(f"--min-confidence {args.min_confidence}: must be between 0 and 1")
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed {args.seed}: must be a non-negative integer below 2**63")


def run(args: argparse.Namespace) -> int:
    from posediffusion.io_utils import atomic_path
    from posediffusion.lift import lift_file
    from posediffusion.render import render_animation

    check_options(args)
    outputs = check_outputs(args)  # before the (slow) lifting, so a bad target wastes no time
    result = lift_file(
        args.input, checkpoint=args.checkpoint, format=args.format,
        image_size=tuple(args.image_size) if args.image_size else None,
        min_confidence=args.min_confidence, person=args.person, device=args.device,
        hypotheses=args.hypotheses, steps=args.steps, flip=not args.no_flip, aggregation=args.aggregation,
        keep_hypotheses=args.all_hypotheses, seed=args.seed, progress=sys.stderr.isatty(),
    )
    # All or nothing: every output goes to a temporary file; they are renamed only once all are complete.
    with contextlib.ExitStack() as stack:
        tmp = {flag: stack.enter_context(atomic_path(path, flag=flag)) for flag, path in outputs.items()}
        result.save(tmp["--out"])
        if "--json" in tmp:
            result.save_json(tmp["--json"])
        if "--csv" in tmp:
            result.save_csv(tmp["--csv"])
        if "--render" in tmp:
            render_animation(result.keypoints_2d, result.pose_3d, tmp["--render"],
                             uncertainty=result.uncertainty, fps=result.fps,
                             image_size=result.image_size, title="posediffusion lift")
    filled = int(result.filled.sum()) if result.filled is not None else 0
    far = result.settings.get("far_outside_joints", 0)
    print(f"lifted {len(result.pose_3d)} frames ({result.settings['aggregation']}, "
          f"H={args.hypotheses}, K={args.steps}, flip={not args.no_flip}); {filled} missing joints filled"
          + (f" ({far} of them far outside the image)" if far else ""))
    for path in outputs.values():
        print(f"wrote {path}")
    return 0
