"""`posediffusion train`: train from a preset and/or a YAML config; the seed's short flags are aliases.

Settings are resolved in this order, later winning: ``TrainConfig`` defaults, ``--config FILE``, flags.
``--dry-run`` prints the resolved config and exits. ``--evaluate NAME`` evaluates the checkpoint ``NAME``
in the ``-c`` folder instead of training (the seed's inference command line); see ``posediffusion evaluate``.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from posediffusion.commands.evaluate import add_evaluation_arguments
from posediffusion.commands.evaluate import run as run_evaluate
from posediffusion.commands.flags import (
    DATA_FLAGS,
    FRAMES_FLAG,
    RUN_FLAGS,
    STRIDE_FLAG,
    Flag,
    add_flags,
    add_shared_arguments,
    device_value,
    given_values,
)
from posediffusion.config import (
    DEFAULT_DESIGN,
    PAPER_DESIGN,
    DataConfig,
    TrainConfig,
    build_config,
    load_config_yaml,
)
from posediffusion.io_utils import check_output_folder

HELP = "train a PoseDiffusion+ model (CPU, one GPU, or many through torchrun)"

MODEL_FLAGS = (Flag("preset"),)
#: ``--design`` names -> model/diffusion overrides (``config.DEFAULT_DESIGN``, ``config.PAPER_DESIGN``).
DESIGNS: dict[str, dict[str, Any]] = {"default": dict(DEFAULT_DESIGN), "paper": dict(PAPER_DESIGN)}
DATA_TRAIN_FLAGS = (Flag("flip", name="--no-flip-augment", dest="flip_augment"), Flag("val_fraction"),
                    Flag("val_seed"), Flag("camera_augmentation"), Flag("augment_noise"))
OPTIMISER_FLAGS = (
    Flag("epochs", ("-e",)), Flag("lr", ("-lr",)), Flag("lr_schedule"), Flag("lr_decay", ("-lrd",)),
    Flag("warmup_steps"), Flag("min_lr_ratio"), Flag("weight_decay"),
    Flag("grad_clip"), Flag("ema_decay"), Flag("amp"), Flag("num_workers"), Flag("joint_dropout"),
)
CONTROL_FLAGS = (
    Flag("resume"), Flag("overwrite"), Flag("save_every_steps"), Flag("max_steps"), Flag("budget_min"),
    Flag("budget_clock"), Flag("select_on_test"), Flag("val_every_steps"), Flag("val_hypotheses"),
    Flag("val_steps"), Flag("val_max_windows"), Flag("log_every_steps"), Flag("snapshot_minutes"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML training config (unknown keys are an error)")
    add_flags(parser, TrainConfig, MODEL_FLAGS)
    parser.add_argument("--design", choices=DESIGNS, default=None,
                        help="the three components' forms: 'default' (graph as attention bias, prompts in "
                             "the first block, regulator setting the smoothing only) or 'paper' (the "
                             "paper's forms, config.PAPER_DESIGN); --model overrides apply after it")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model/diffusion config field, e.g. --model width=48 "
                             "--model graph=false")
    add_shared_arguments(parser, TrainConfig)
    opt = parser.add_argument_group("optimisation")
    add_flags(opt, TrainConfig, OPTIMISER_FLAGS)
    add_flags(opt, DataConfig, DATA_TRAIN_FLAGS)
    ctl = parser.add_argument_group("checkpoints and stopping")
    add_flags(ctl, TrainConfig, CONTROL_FLAGS)
    ctl.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    add_evaluation_arguments(parser, for_train=True)


def _model_overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from ``--config`` (with ``--resume``: the run's own ``config.yaml``) and the given flags.

    A resumed run starts from its saved settings, so flags need not be repeated; :func:`train` refuses a
    flag that contradicts them (other than budget, logging and machine settings).
    """
    saved = Path(getattr(args, "checkpoint", TrainConfig.checkpoint)) / "config.yaml"
    if args.config:
        config = load_config_yaml(TrainConfig, args.config)
    elif getattr(args, "resume", False) and saved.is_file():
        config = load_config_yaml(TrainConfig, saved)
    else:
        config = TrainConfig()
    flags = MODEL_FLAGS + RUN_FLAGS + OPTIMISER_FLAGS + CONTROL_FLAGS
    top = {**given_values(args, flags), **device_value(args)}
    data = given_values(args, DATA_FLAGS + STRIDE_FLAG + DATA_TRAIN_FLAGS)
    if args.nolog or args.quiet:
        top["progress_bar"] = False
    if args.nolog:
        top["tensorboard"] = False
    design = DESIGNS[args.design] if getattr(args, "design", None) else {}
    model = {**config.model, **design, **_model_overrides(args.model), **given_values(args, FRAMES_FLAG)}
    values = {**config.to_dict(), **top, "model": model, "data": {**config.to_dict()["data"], **data}}
    return build_config(TrainConfig, values, "command line")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "checkpoint_name", None):
        return run_evaluate(args)
    from posediffusion.train import train  # torch and the model: only when training

    config = config_from_args(args)
    if args.dry_run:
        print(yaml.safe_dump(config.resolved().to_dict(), sort_keys=False), end="")
        return 0
    check_output_folder(config.checkpoint, flag="-c/--checkpoint")  # the run folder: not a file
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 reports
    if not main_process:
        logging.getLogger("posediffusion").setLevel(logging.WARNING)
    result = train(config)
    if not main_process:
        return 0
    progress = result.progress
    best = "" if progress.best_score_mm is None else (
        f", best selection MPJPE {progress.best_score_mm:.2f} mm at step {progress.best_step} "
        f"(epoch {progress.best_epoch})")
    early = " (stopped early: resume with --resume)" if result.stopped_early else ""
    print(f"trained {progress.epoch} epoch(s), {progress.global_step} steps; checkpoints in "
          f"{result.run_dir}{best}{early}")
    return 0
