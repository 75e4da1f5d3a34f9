"""`posediffusion evaluate`: protocol evaluation of a checkpoint (tables + JSON report, 3DHP export, render).

The seed's inference flags are accepted: ``-c DIR --evaluate NAME`` picks ``DIR/NAME``;
``-num_proposals`` = ``--hypotheses`` (H), ``-sampling_timesteps`` = ``--steps`` (K), ``--p2`` adds
P-MPJPE, ``-b`` windows per sampler call, ``-s`` window stride, ``-f`` must equal the model's window.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posediffusion.commands.flags import (
    DATA_FLAGS,
    EVAL_FLAGS,
    RUN_FLAGS,
    STRIDE_FLAG,
    Flag,
    add_evaluation_flags,
    add_flags,
    add_shared_arguments,
    device_value,
    given_values,
)
from posediffusion.config import EvalConfig, build_config

HELP = "evaluate a checkpoint: MPJPE / P-MPJPE / N-MPJPE / MPJVE per DDIM step and aggregation"


def add_evaluation_arguments(parser: argparse.ArgumentParser, for_train: bool = False) -> None:
    """Evaluation flags (also registered on ``train`` so the seed's ``main.py --evaluate`` lines work)."""
    ev = parser.add_argument_group("evaluation" + (" (with --evaluate)" if for_train else ""))
    add_flags(ev, EvalConfig, (Flag("checkpoint_name", name="--evaluate", metavar="NAME"),))
    add_evaluation_flags(ev)
    ev.add_argument("--per-action", action="store_true", help="also print MPJPE per action")
    ev.add_argument("--save-predictions", metavar="PATH.npz",
                    help="write every test sequence's estimates (last step), ground truth and settings "
                         "to one npz (layout in docs/evaluation.md)")
    ev.add_argument("--save-hypotheses", action="store_true",
                    help="with --save-predictions: also store all H hypotheses (H times larger)")
    ev.add_argument("--out", help="output folder for report.json (and 3DHP files); default: "
                                  "<run folder>/eval-<checkpoint>")
    ev.add_argument("--gt-dir", help="3DHP: folder with TS*/annot_data.mat -> official PCK/AUC/MPJPE tables")
    ev.add_argument("--annot", choices=["annot3", "univ_annot3"], default="annot3",
                    help="3DHP ground truth for --gt-dir scoring (default annot3)")
    ev.add_argument("--render", action="store_true", help="render one evaluated sequence (--viz-*)")
    ev.add_argument("--viz-subject", help="subject to render, e.g. S9 (3DHP: TS1)")
    ev.add_argument("--viz-action", help="take to render, e.g. 'Walking 1'")
    ev.add_argument("--viz-camera", default="0", help="camera id or index (default 0)")
    ev.add_argument("--viz-output", help="gif or mp4 path (default <out>/render.gif)")
    ev.add_argument("--viz-limit", type=int, help="render at most N frames")
    ev.add_argument("--viz-estimate", default="P-Agg", help="estimate to draw (default P-Agg)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_shared_arguments(parser, EvalConfig)
    add_evaluation_arguments(parser)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """EvalConfig from the flags that were given; ``-str`` and training-only flags are ignored."""
    if not hasattr(args, "checkpoint"):
        raise ValueError("give the checkpoint with --checkpoint/-c (a checkpoint or run folder)")
    data = given_values(args, DATA_FLAGS)
    data.pop("subjects_train", None)
    values = {**given_values(args, RUN_FLAGS + STRIDE_FLAG + EVAL_FLAGS), **device_value(args), "data": data}
    values["checkpoint_name"] = getattr(args, "checkpoint_name", None)
    return build_config(EvalConfig, values, "command line")


def _check_frames(args: argparse.Namespace, config: EvalConfig) -> None:
    if not hasattr(args, "frames"):
        return
    from posediffusion.checkpoint import read_checkpoint

    frames = read_checkpoint(config.checkpoint, config.checkpoint_name).model_config["model"]["frames"]
    if args.frames != frames:
        raise ValueError(f"-f/--frames {args.frames} differs from the checkpoint's window length {frames}")


def run(args: argparse.Namespace) -> int:
    from posediffusion import evaluate as ev

    config = config_from_args(args)
    if args.out:  # before the evaluation, which may take hours
        from posediffusion.io_utils import check_output_folder

        check_output_folder(args.out, flag="--out")
    _check_frames(args, config)
    wants_3dhp = args.gt_dir is not None or config.data.get("dataset") == "3dhp"
    render = args.render and args.viz_subject and args.viz_action
    if args.render and not render:
        raise ValueError("--render needs --viz-subject and --viz-action")
    save = args.save_predictions
    if save is not None and (not save.endswith(".npz") or Path(save).is_dir()):
        raise ValueError(f"--save-predictions {save}: expected a path ending in .npz")
    if args.save_hypotheses and save is None:
        raise ValueError("--save-hypotheses needs --save-predictions PATH.npz")

    def keep(seq) -> bool:
        return save is not None or seq.extra.get("dataset") == "3dhp" or wants_3dhp or bool(
            render and seq.subject == args.viz_subject and seq.action == args.viz_action)

    evaluation = ev.evaluate(config, keep=keep, keep_hypotheses=args.save_hypotheses)
    report = evaluation.report
    out = Path(args.out) if args.out else _default_out(report)
    print(ev.format_report(report, per_action=args.per_action))
    if report["settings"]["data"]["dataset"] == "3dhp":
        _export_3dhp(ev, evaluation, out, args)
    if render:
        path = ev.render_sequence(evaluation, args.viz_subject, args.viz_action, args.viz_camera,
                                  args.viz_output or out / "render.gif", label=args.viz_estimate,
                                  max_frames=args.viz_limit)
        report["render"] = str(path)
        print(f"rendered {path}")
    if save is not None:
        report["predictions_file"] = str(ev.save_predictions(evaluation, save))
        print(f"predictions: {save}")
    path = ev.write_report(report, out / "report.json")
    print(f"report: {path}")
    return 0


def _default_out(report: dict) -> Path:
    checkpoint = Path(report["settings"]["checkpoint"])
    return checkpoint.parent / f"eval-{checkpoint.name}"


def _export_3dhp(ev, evaluation, out: Path, args: argparse.Namespace) -> None:
    files = ev.export_3dhp(evaluation, out)
    evaluation.report["3dhp_predictions"] = {k: str(v) for k, v in files.items()}
    print("3DHP predictions (eval-3dhp format, mm, 3DHP joint order): "
          + ", ".join(str(p) for p in files.values()))
    if args.gt_dir is None:
        return
    if evaluation.report["settings"]["data"].get("max_frames_per_sequence"):
        print("3DHP official scoring skipped: --max-frames-per-sequence cut the sequences")
        return
    scores = {}
    for label, path in files.items():
        if label == "PRED":
            continue
        result = ev.score_3dhp(path, args.gt_dir, out / f"3dhp_{path.stem}", annot_key=args.annot)
        print(f"\n{label} - official MPI-INF-3DHP scoring ({args.annot})\n{result.pop('tables')}")
        scores[label] = result
    evaluation.report["3dhp_official"] = scores
