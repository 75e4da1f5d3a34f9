"""`posediffusion lift INPUT --out OUT.npz`: lift a 2D keypoint file of any length to 3D."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from typing import Any

HELP = ("lift a 2D keypoint file (AlphaPose, OpenPose, MMPose, Detectron2, VideoPose3D, MediaPipe, COCO; "
        "JSON, npz, csv) to 3D")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posediffusion.data.keypoint_formats import FORMATS  # torch-free, so --help stays fast

    parser.add_argument("input", help="keypoint file, or a folder of OpenPose *_keypoints.json files (or "
                                      "of MMPose per-image JSON files)")
    parser.add_argument("--out", required=True, help="output npz (pose_3d, uncertainty, keypoints_2d, ...)")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS), help="input format")
    parser.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"), default=None,
                        help="video size in pixels, whole numbers (required unless the file stores it)")
    add_lifting_arguments(parser, min_confidence_help=(
        "below this a joint is missing (default: the tool's own drawing threshold: 0.3; Detectron2 and "
        "OpenPose 0.05, MediaPipe 0.5). NaN and (0, 0) points are always missing"), fps_help=(
        "frame rate of the input (overrides the file's; without either 50 is assumed, and the outputs "
        "say so)"))
    parser.add_argument("--person", type=int, default=None, metavar="ID",
                        help="the person (track id) to lift: the file's track ids (AlphaPose idx) when it "
                             "has them, else 0, 1, ... in order of first appearance (default: the track seen "
                             "in most frames; the log lists them)")
    parser.add_argument("--all-people", action="store_true",
                        help="lift every person's track: one output per track, OUT_track<ID>.npz (and "
                             "_track<ID> in --json/--csv/--render names)")
    parser.add_argument("--render", default=None, metavar="OUT.gif|.mp4", help="also render an animation")


def add_lifting_arguments(parser: argparse.ArgumentParser, *, min_confidence_help: str, fps_help: str
                          ) -> None:
    """The sampling, input-quality, scale and extra-output flags of ``lift`` and ``video``."""
    from posediffusion.scale import HEIGHT_RANGE_M, SCALE_METHODS  # numpy only, so --help stays fast

    low, high = HEIGHT_RANGE_M

    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled model)")
    parser.add_argument("--hypotheses", "-num_proposals", type=int, default=None,
                        help="H samples (default 1, which measures no uncertainty; 20 with --accurate)")
    parser.add_argument("--steps", "-sampling_timesteps", type=int, default=None,
                        help="K DDIM steps (default 1; 5 with --accurate)")
    parser.add_argument("--accurate", action="store_true",
                        help="the most accurate sampling of the speed-accuracy sweep (H=20, K=5, flip), "
                             "about 100x slower than the default (H=1, K=1, flip; ~4.6 %% higher MPJPE)")
    parser.add_argument("--aggregation", choices=("p-agg", "j-agg", "pose", "joint"), default="p-agg",
                        metavar="{p-agg,j-agg}",
                        help="p-agg = P-Agg, mean of hypotheses (default); j-agg = J-Agg without a camera "
                             "(weak perspective); the old names pose and joint still work")
    flip = parser.add_mutually_exclusive_group()
    flip.add_argument("--flip", dest="flip", action="store_true", default=None,
                      help="flip test-time augmentation (2x the time; the default)")
    flip.add_argument("--no-flip", dest="flip", action="store_false", help="no flip test-time augmentation "
                      "(about 2x faster)")
    parser.add_argument("--stride", type=int, default=None, metavar="N",
                        help="window stride in frames (default: half the window, 13 for the bundled model: "
                             "overlapping windows are blended, which smooths their seams); the window length "
                             "(27) lifts each frame once, about 2x faster")
    parser.add_argument("--all-hypotheses", action="store_true", help="also store all hypotheses")
    parser.add_argument("--min-confidence", type=float, default=None, help=min_confidence_help)
    parser.add_argument("--fps", type=float, default=None, metavar="F", help=fps_help)
    parser.add_argument("--scale", choices=SCALE_METHODS, default=None,
                        help="metric size of the output, which 2D alone cannot tell: prior = resize to the "
                             "reference skeleton (the bundled model's mean training skeleton, 1.64 m tall; "
                             "the default); height = to --height; none = the network's raw output")
    parser.add_argument("--height", type=float, default=None, metavar="METRES",
                        help=f"the person's standing height in metres ({low:g}-{high:g}), e.g. 1.80: the "
                             "skeleton is scaled to it (implies --scale height)")
    parser.add_argument("--no-rescale", action="store_true",
                        help="keep the network's raw output size (the same as --scale none)")
    parser.add_argument("--never-seen", choices=("model", "prior"), default=None,
                        help="joints the clip never shows: model = the network infers them (models trained "
                             "with the missing-joint input, the bundled one included); prior = place them "
                             "from a 2D body prior and lift that as if seen. Default: the better of the two "
                             "on validation takes for such a model (docs/in-the-wild.md), else prior")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write JSON")
    parser.add_argument("--csv", default=None, metavar="PATH", help="also write CSV (frame,joint,x,y,z,unc)")


#: output flag -> accepted suffixes
OUTPUTS = {"--out": (".npz",), "--json": (".json",), "--csv": (".csv",), "--render": (".gif", ".mp4")}


def check_outputs(args: argparse.Namespace, outputs: dict[str, tuple[str, ...]] = OUTPUTS) -> dict[str, str]:
    """Every output target of ``outputs`` (flag -> suffixes), checked before anything is read: flag -> path.

    Suffix, not a folder/device/FIFO, parent a folder or creatable (``io_utils.check_output_path``), and no
    two flags naming the same file. ``ValueError`` naming the flag.
    """
    from posediffusion.io_utils import check_output_path

    given = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in outputs}
    given = {flag: path for flag, path in given.items() if path}
    seen: dict[str, str] = {}
    for flag, path in given.items():
        target = str(check_output_path(path, flag=flag, suffixes=outputs[flag]))
        if target in seen:
            raise ValueError(f"{flag} {path}: the same file as {seen[target]}")
        seen[target] = flag
    return given


def check_options(args: argparse.Namespace) -> None:
    """Numeric flags the lifter would otherwise reject deep inside (or accept silently); also for video."""
    from posediffusion.data.keypoints import check_fps
    from posediffusion.lift import ACCURATE_SAMPLING, FAST_SAMPLING

    sampling = ACCURATE_SAMPLING if args.accurate else FAST_SAMPLING
    for name, value in sampling.items():  # explicit flags win over the preset
        if getattr(args, name) is None:
            setattr(args, name, value)
    for flag, value in (("--hypotheses", args.hypotheses), ("--steps", args.steps),
                        ("--stride", 1 if args.stride is None else args.stride)):
        if value < 1:
            raise ValueError(f"{flag} {value}: must be at least 1")
    if args.min_confidence is not None and not (math.isfinite(args.min_confidence)
                                                and 0.0 <= args.min_confidence <= 1.0):
        raise ValueError(f"--min-confidence {args.min_confidence}: must be between 0 and 1")
    if args.fps is not None:
        check_fps(args.fps, "--fps")
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed {args.seed}: must be a non-negative integer below 2**63")
    if getattr(args, "all_people", False) and args.person is not None:
        raise ValueError(f"--person {args.person} and --all-people: give one of them")
    scale_options(args)


def scale_options(args: argparse.Namespace) -> tuple[str, float | None]:
    """``(method, height)`` from ``--scale``, ``--height`` and ``--no-rescale``: ``--height`` implies
    ``--scale height``, ``--no-rescale`` is ``--scale none``, neither means ``prior``; contradicting flags
    or an implausible height are a ``ValueError`` naming them."""
    from posediffusion.scale import check_scale_options

    method = args.scale
    if args.no_rescale:
        if method not in (None, "none") or args.height is not None:
            given = f"--scale {method}" if method not in (None, "none") else f"--height {args.height:g}"
            raise ValueError(f"--no-rescale and {given}: give one of them")
        method = "none"
    if method is None:
        method = "prior" if args.height is None else "height"
    check_scale_options(method, args.height)
    return method, args.height


def scale_summary(result: Any) -> str:
    """One line on the size of a ``LiftResult``: the factor, why, and the standing height it implies."""
    info = result.settings.get("scale", {})
    height = info.get("standing_height_m")
    tall = f"standing height {height:.2f} m" if height is not None else ""
    if result.scale_method == "prior":
        return (f"scaled x{result.scale_factor:.3f} to the reference skeleton (--scale prior): {tall}, an "
                "assumption; pass --height METRES if you know it")
    if result.scale_method == "height":
        return f"scaled x{result.scale_factor:.3f} to --height {result.height:g} m"
    return f"not rescaled (--scale none): the network's raw size, {tall} by the body model"


def save_result_files(result: Any, tmp: dict[str, Path]) -> None:
    """Write a ``LiftResult`` to the temporary paths of ``--out`` and, when given, ``--json`` / ``--csv``."""
    result.save(tmp["--out"])
    if "--json" in tmp:
        result.save_json(tmp["--json"])
    if "--csv" in tmp:
        result.save_csv(tmp["--csv"])


def track_path(path: str, track: int) -> Path:
    """``--all-people`` output of one track: ``OUT.npz`` -> ``OUT_track<id>.npz`` (same folder, suffix)."""
    path_ = Path(path)
    return path_.with_name(f"{path_.stem}_track{track}{path_.suffix}")


def run(args: argparse.Namespace) -> int:
    from posediffusion.io_utils import atomic_path
    from posediffusion.lift import lift_all_people, lift_file
    from posediffusion.render import render_animation

    check_options(args)
    outputs = check_outputs(args)  # before the (slow) lifting, so a bad target wastes no time
    options = dict(
        checkpoint=args.checkpoint, format=args.format,
        image_size=tuple(args.image_size) if args.image_size else None,
        min_confidence=args.min_confidence, device=args.device, fps=args.fps,
        hypotheses=args.hypotheses, steps=args.steps, flip=args.flip, aggregation=args.aggregation,
        keep_hypotheses=args.all_hypotheses, seed=args.seed, progress=sys.stderr.isatty(),
        never_seen=args.never_seen, stride=args.stride,
    )
    options["scale"], options["height"] = scale_options(args)
    if args.all_people:
        results = lift_all_people(args.input, **options)
        targets = {track: {flag: str(track_path(path, track)) for flag, path in outputs.items()}
                   for track in results}
    else:
        results = {None: lift_file(args.input, person=args.person, **options)}
        targets = {None: outputs}
    # All or nothing: every output (of every track) goes to a temporary file; they are renamed only once
    # all are complete.
    with contextlib.ExitStack() as stack:
        for key, result in results.items():
            tmp = {flag: stack.enter_context(atomic_path(path, flag=flag))
                   for flag, path in targets[key].items()}
            save_result_files(result, tmp)
            if "--render" in tmp:
                render_animation(result.keypoints_2d, result.pose_3d, tmp["--render"],
                                 uncertainty=result.uncertainty, fps=result.fps,
                                 image_size=result.image_size, title="posediffusion lift")
    for key, result in results.items():
        _report(args, result, targets[key], "" if key is None else f"track {key}: ")
    return 0


def inferred_by_text(result: Any) -> str:
    """How never-seen joints were placed: "by the model" (joint_mask models) or "from a body prior"."""
    return "by the model" if result.settings.get("inferred_by") == "model" else "from a body prior"


#: Printed by ``lift`` and ``video`` when they sample one hypothesis (the fast default).
UNCERTAINTY_NOTE = ("uncertainty: not measured with one hypothesis (NaN; --hypotheses 5 or --accurate "
                    "measures the spread of hypotheses)")


def _report(args: argparse.Namespace, result: Any, written: dict[str, str], prefix: str) -> None:
    """What was lifted and written, on stdout."""
    filled = int(result.filled.sum()) if result.filled is not None else 0
    far = result.settings.get("far_outside_joints", 0)
    inferred = result.settings.get("inferred_joints") or []
    print(f"{prefix}lifted {len(result.pose_3d)} frames ({result.settings['aggregation']}, "
          f"H={args.hypotheses}, K={args.steps}, flip={args.flip}); {filled} missing joints filled"
          + (f" ({far} of them far outside the image)" if far else "")
          + (f"; never seen, INFERRED {inferred_by_text(result)} (not measured): {', '.join(inferred)}"
             if inferred else ""))
    ids = result.input_frames()
    how = {"--fps": "from --fps", "file": "from the file",
           "assumed": "ASSUMED: the input states none; pass --fps"}.get(result.fps_source, result.fps_source)
    print(f"{prefix}input frames {ids[0]}..{ids[-1]}; fps {result.fps:g} ({how})")
    print(f"{prefix}{scale_summary(result)}")
    if args.hypotheses < 2:
        print(f"{prefix}{UNCERTAINTY_NOTE}")
    for path in written.values():
        print(f"wrote {path}")
