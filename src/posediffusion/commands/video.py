"""`posediffusion video CLIP.mp4 --out pose3d.npz [--render out.mp4]`: 2D by MediaPipe Pose, then lift."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys

HELP = "lift the person in a video to 3D (2D keypoints by MediaPipe Pose: pip install -e '.[video]')"

#: output flag -> accepted suffixes
OUTPUTS = {"--out": (".npz",), "--json": (".json",), "--csv": (".csv",), "--render": (".gif", ".mp4"),
           "--save-2d": (".npz",)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file (mp4, mov, avi, webm...: anything ffmpeg reads); one "
                                      "person is tracked (MediaPipe's legacy Pose)")
    parser.add_argument("--out", required=True,
                        help="output npz (pose_3d, uncertainty, keypoints_2d, fps, ...)")
    parser.add_argument("--render", default=None, metavar="OUT.mp4|.gif",
                        help="also render the video frames with the 2D keypoints beside the 3D prediction")
    parser.add_argument("--save-2d", default=None, metavar="PATH.npz",
                        help="also save MediaPipe's 33 landmarks (npz that `posediffusion lift` reads)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate, overriding the video's metadata (needed when it states none)")
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
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="landmarks with MediaPipe visibility below this are missing (filled over time); "
                             "default: lift's MediaPipe default (docs/in-the-wild.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write JSON")
    parser.add_argument("--csv", default=None, metavar="PATH", help="also write CSV (frame,joint,x,y,z,unc)")


def check_outputs(args: argparse.Namespace) -> dict[str, str]:
    """Every output target, checked before the video is read: flag -> path as given (``ValueError`` naming
    the flag: suffix, folder/device/FIFO, parent, two flags naming the same file)."""
    from posediffusion.io_utils import check_output_path

    given = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in OUTPUTS}
    seen: dict[str, str] = {}
    for flag, path in given.items():
        if not path:
            continue
        target = str(check_output_path(path, flag=flag, suffixes=OUTPUTS[flag]))
        if target in seen:
            raise ValueError(f"{flag} {path}: the same file as {seen[target]}")
        seen[target] = flag
    return {flag: path for flag, path in given.items() if path}


def check_options(args: argparse.Namespace) -> None:
    """Numeric flags, checked before anything is read (``ValueError`` naming the flag)."""
    from posediffusion.data.keypoints import check_fps

    for flag, value in (("--hypotheses", args.hypotheses), ("--steps", args.steps)):
        if value < 1:
            raise ValueError(f"{flag} {value}: must be at least 1")
    if args.min_confidence is not None and not (math.isfinite(args.min_confidence)
                                                 and 0.0 <= args.min_confidence <= 1.0):
        raise ValueError(f"--min-confidence {args.min_confidence}: must be between 0 and 1")
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed {args.seed}: must be a non-negative integer below 2**63")
    if args.fps is not None:
        check_fps(args.fps, "--fps")


def run(args: argparse.Namespace) -> int:
    from posediffusion.io_utils import atomic_path
    from posediffusion.video import MediaPipeUnavailable, lift_video, render_lifted_video

    check_options(args)
    outputs = check_outputs(args)  # before the (slow) 2D pass and lifting
    progress = sys.stderr.isatty()
    try:
        result, landmarks = lift_video(
            args.input, checkpoint=args.checkpoint, device=args.device, min_confidence=args.min_confidence,
            fps=args.fps, progress=progress, hypotheses=args.hypotheses, steps=args.steps,
            flip=not args.no_flip, aggregation=args.aggregation, keep_hypotheses=args.all_hypotheses,
            seed=args.seed)
    except MediaPipeUnavailable as err:
        raise ValueError(str(err)) from err  # a one-line error (exit 2), not a traceback
    # All or nothing: every output goes to a temporary file; they are renamed only once all are complete.
    with contextlib.ExitStack() as stack:
        tmp = {flag: stack.enter_context(atomic_path(path, flag=flag)) for flag, path in outputs.items()}
        result.save(tmp["--out"])
        if "--json" in tmp:
            result.save_json(tmp["--json"])
        if "--csv" in tmp:
            result.save_csv(tmp["--csv"])
        if "--save-2d" in tmp:
            landmarks.save(tmp["--save-2d"])
        if "--render" in tmp:
            render_lifted_video(args.input, result, tmp["--render"], title="posediffusion video",
                                progress=progress)
    frames, found = len(result.pose_3d), int(landmarks.detected.sum())
    w, h = result.image_size
    print(f"{args.input}: {frames} frames, {w}x{h}, {result.fps:.4g} fps "
          f"({result.settings['video']['fps_source']}); a person found in {found} of them")
    inferred = result.settings["inferred_joints"]
    print(f"lifted {frames} frames ({result.settings['aggregation']}, H={args.hypotheses}, K={args.steps}, "
          f"flip={not args.no_flip}); {int(result.filled.sum())} missing joints filled"
          + (f"; never seen, INFERRED from a body prior (not measured): {', '.join(inferred)}"
             if inferred else ""))
    for path in outputs.values():
        print(f"wrote {path}")
    return 0
