"""`posediffusion train`: train from a preset and/or a YAML config; the seed's short flags are aliases.

Settings are resolved in this order, later winning: ``TrainConfig`` defaults, ``--config FILE``, flags.
``--dry-run`` prints the resolved config and exits. ``--evaluate NAME`` evaluates the checkpoint ``NAME``
in the ``-c`` folder instead of training (the seed's inference command line); see ``posediffusion evaluate``.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "train a PoseDiffusion+ model (CPU, one GPU, or many through torchrun)"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def device_from_gpu_flag(gpu: str) -> str:
    """The seed's ``-gpu`` value -> a device string: ``0`` -> ``cuda:0``, ``0,1`` -> ``cuda:0,1``, ``cpu``."""
    gpu = gpu.strip()
    if gpu in ("", "cpu", "-1"):
        return "cpu"
    if not all(part.strip().isdigit() for part in gpu.split(",")):
        raise ValueError(f"-gpu expects GPU indices like 0 or 0,1 (or cpu), got {gpu!r}")
    return f"cuda:{gpu.replace(' ', '')}"


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, checkpoint, window and device flags shared by ``train`` and ``evaluate`` (seed aliases)."""
    data = parser.add_argument_group("data")
    data.add_argument("-d", "--dataset", help="h36m, 3dhp, or the name of a `prepare mocap` dataset")
    data.add_argument("--data-dir", help="folder with the dataset files (default: data)")
    data.add_argument("-k", "--keypoints", help="2D source: gt, cpn_ft_h36m_dbb, det, ... (default gt)")
    data.add_argument("-str", "--subjects-train", type=_csv, help="training subjects, e.g. S1,S5,S6,S7,S8")
    data.add_argument("-ste", "--subjects-test", type=_csv, help="test subjects, e.g. S9,S11")
    data.add_argument("--actions", type=_csv, help="only these actions (comma-separated)")
    data.add_argument("--cameras", help="camera JSON (default: the bundled Human3.6M calibration)")
    data.add_argument("--max-frames-per-sequence", type=int, help="use the first N frames of each sequence")
    run = parser.add_argument_group("run")
    run.add_argument("-c", "--checkpoint", help="run folder (train) / checkpoint or run folder (evaluate)")
    run.add_argument("-b", "--batch-size", type=int, help="windows per batch")
    run.add_argument("-s", "--stride", type=int, help="window stride in frames (default: window length)")
    run.add_argument("-f", "--frames", type=int, help="window length T (a model setting; must match to "
                                                      "evaluate)")
    run.add_argument("--device", help="auto, cpu, cuda, cuda:N (default auto)")
    run.add_argument("-gpu", "--gpu", help="seed alias: GPU indices (0 or 0,1) -> --device cuda:0[,1]; "
                                           "several GPUs need torchrun")
    run.add_argument("--seed", type=int, help="random seed (default 0)")
    run.add_argument("--nolog", action="store_true", help="no progress bars and no TensorBoard (CSV logs "
                                                          "are still written)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posediffusion.commands.evaluate import add_evaluation_arguments

    parser.add_argument("--config", help="YAML training config (unknown keys are an error)")
    parser.add_argument("--preset", help="model preset: paper, base, small, tiny (default small)")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model/diffusion config field, e.g. --model width=48 "
                             "--model graph=false")
    add_shared_arguments(parser)
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("-e", "--epochs", type=int)
    opt.add_argument("-lr", "--lr", type=float, help="AdamW learning rate (default 6e-5; 3dhp 7e-5)")
    opt.add_argument("-lrd", "--lr-decay", type=float, help="per-epoch LR decay (default 0.993; 3dhp 0.995)")
    opt.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.1)")
    opt.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1.0)")
    opt.add_argument("--ema-decay", type=float, help="EMA of the weights, e.g. 0.999 (default off)")
    opt.add_argument("--amp", choices=["auto", "none", "bf16", "fp16"], help="autocast (auto: bf16 on CUDA)")
    opt.add_argument("--no-flip-augment", action="store_true", help="no left/right flip augmentation")
    opt.add_argument("--val-fraction", type=float, help="training frames held out for validation (0.1)")
    opt.add_argument("--num-workers", type=int, help="DataLoader workers (default 0)")
    ctl = parser.add_argument_group("checkpoints and stopping")
    ctl.add_argument("--resume", action="store_true", help="continue the run in -c exactly")
    ctl.add_argument("--overwrite", action="store_true", help="start a new run in a folder holding one")
    ctl.add_argument("--save-every-steps", type=int, help="also checkpoint every N steps (mid-epoch)")
    ctl.add_argument("--max-steps", type=int, help="stop after N optimisation steps in total")
    ctl.add_argument("--budget-min", type=float, help="stop after this many minutes")
    ctl.add_argument("--budget-clock", choices=("wall", "cpu"),
                     help="clock of --budget-min: wall (default) or this process's CPU time")
    ctl.add_argument("--select-on-test", action="store_true",
                     help="choose `best` on the TEST split (labelled in metadata and reports)")
    ctl.add_argument("--val-hypotheses", type=int, help="H for the validation score (default 1)")
    ctl.add_argument("--val-steps", type=int, help="K for the validation score (default 2)")
    ctl.add_argument("--val-max-windows", type=int, help="windows scored per validation (default 128)")
    ctl.add_argument("--log-every-steps", type=int, help="steps between rows of steps.csv (default 10)")
    ctl.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    add_evaluation_arguments(parser, for_train=True)


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def _model_overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model expects KEY=VALUE, got {item!r}")
        out[key.strip()] = _parse_value(value)
    return out


#: argparse dest -> TrainConfig field (top level) for flags that map one to one.
_TRAIN_FIELDS = ("preset", "checkpoint", "epochs", "batch_size", "lr", "lr_decay", "weight_decay",
                 "grad_clip", "ema_decay", "amp", "device", "seed", "save_every_steps", "max_steps",
                 "budget_min", "budget_clock", "val_hypotheses", "val_steps", "val_max_windows",
                 "num_workers", "log_every_steps")
_DATA_FIELDS = ("dataset", "data_dir", "keypoints", "subjects_train", "subjects_test", "actions", "cameras",
                "stride", "max_frames_per_sequence", "val_fraction")


def config_from_args(args: argparse.Namespace) -> Any:
    """TrainConfig from ``--config`` (if any) overridden by the flags that were given."""
    import dataclasses

    from posediffusion.train import TrainConfig, load_train_config

    config = load_train_config(args.config) if args.config else TrainConfig()
    if args.gpu is not None:
        args.device = device_from_gpu_flag(args.gpu)
    top = {f: getattr(args, f) for f in _TRAIN_FIELDS if getattr(args, f) is not None}
    data = {f: getattr(args, f) for f in _DATA_FIELDS if getattr(args, f) is not None}
    if args.no_flip_augment:
        data["flip"] = False
    for flag in ("resume", "overwrite", "select_on_test"):
        if getattr(args, flag):
            top[flag] = True
    if args.nolog or args.quiet:
        top["progress_bar"] = False
    if args.nolog:
        top["tensorboard"] = False
    model = {**config.model, **_model_overrides(args.model)}
    if args.frames is not None:
        model["frames"] = args.frames
    values = {**config.to_dict(), **top, "model": model, "data": {**dataclasses.asdict(config.data), **data}}
    return TrainConfig.from_dict(values, source="command line")


def run(args: argparse.Namespace) -> int:
    if args.evaluate:
        from posediffusion.commands.evaluate import run as run_evaluate

        return run_evaluate(args)
    import logging
    import os

    import yaml

    from posediffusion.train import train

    config = config_from_args(args)
    if args.dry_run:
        print(yaml.safe_dump(config.resolved().to_dict(), sort_keys=False), end="")
        return 0
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 reports
    if not main_process:
        logging.getLogger("posediffusion").setLevel(logging.WARNING)
    result = train(config)
    if not main_process:
        return 0
    progress = result.progress
    best = "" if progress.best_score_mm is None else (
        f", best selection MPJPE {progress.best_score_mm:.2f} mm at epoch {progress.best_epoch}")
    early = " (stopped early: resume with --resume)" if result.stopped_early else ""
    print(f"trained {progress.epoch} epoch(s), {progress.global_step} steps; checkpoints in "
          f"{result.run_dir}{best}{early}")
    return 0
