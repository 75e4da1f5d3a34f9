"""Command-line flags derived from the config dataclasses: one declaration per flag, nothing repeated.

A flag names the config field it sets (``Flag("batch_size", "-b")``); its type, choices and ``--help`` (the
field's docstring and default) come from the dataclass, so the command line cannot drift from the configs.
Flags default to "not given" (``argparse.SUPPRESS``): :func:`given_values` returns only what the user typed,
and the config's own default and validation apply to everything else (``--hypotheses 0`` is an error, not
the default). The flags shared by ``train`` and ``evaluate`` are declared once here.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any

from posediffusion.config import (
    AGGREGATIONS,
    AMP_MODES,
    BUDGET_CLOCKS,
    EVAL_SPLITS,
    LR_SCHEDULES,
    PRESETS,
    ROOT_SOURCES,
    WEIGHT_CHOICES,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
)


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets the config field ``field`` (also the argparse ``dest``)."""

    field: str
    aliases: tuple[str, ...] = ()
    """Extra option strings, e.g. the seed's ``-b`` or ``-num_proposals``."""
    name: str | None = None
    """The long option; ``None``: ``--`` + the field name with dashes (``--no-`` + it for a true default)."""
    dest: str | None = None
    """argparse destination when two configs' fields share a name in one parser; ``None``: the field."""
    metavar: str | None = None
    help: str | None = None
    """Help text where the field's docstring does not fit the flag; ``None``: the docstring."""

    @property
    def key(self) -> str:
        return self.dest or self.field


def csv_list(text: str) -> list[str]:
    """``"S9, S11,"`` -> ``["S9", "S11"]`` (comma-separated flag values)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def csv_numbers(kind: type) -> Any:
    """argparse ``type`` for comma-separated numbers of ``kind`` (int or float)."""

    def parse(text: str) -> list[Any]:
        try:
            return [kind(t) for t in csv_list(text)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None

    parse.__name__ = f"{kind.__name__} list"
    return parse


#: Choices of fields whose valid values are a fixed vocabulary (validated again by the dataclass).
CHOICES: dict[str, tuple[str, ...]] = {
    "preset": tuple(PRESETS), "amp": AMP_MODES, "lr_schedule": LR_SCHEDULES, "budget_clock": BUDGET_CLOCKS,
    "weights": WEIGHT_CHOICES, "aggregations": AGGREGATIONS, "root_sources": ROOT_SOURCES,
    "split": EVAL_SPLITS,
}


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal under each field), whitespace collapsed."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _help(cls: type, field: dataclasses.Field, flag: Flag) -> str:
    if flag.help is not None:
        return flag.help
    text = field_docs(cls).get(field.name, "").replace("``", "").replace("%", "%%")
    default = field.default if field.default is not dataclasses.MISSING else None
    if default is True:
        text = f"turn off: {text}"
    elif isinstance(default, (int, float, str)) and not isinstance(default, bool):
        text += f" (default {default})"
    return text


def _kwargs(cls: type, flag: Flag) -> tuple[list[str], dict[str, Any]]:
    """Option strings and ``add_argument`` keywords of ``flag`` on dataclass ``cls``."""
    field = {f.name: f for f in dataclasses.fields(cls)}[flag.field]
    kind = typing.get_type_hints(cls)[flag.field]
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType)
    base = [a for a in typing.get_args(kind) if a is not type(None)] if optional else [kind]
    kwargs: dict[str, Any] = {"dest": flag.key, "default": argparse.SUPPRESS, "help": _help(cls, field, flag)}
    long = flag.name or "--" + flag.field.replace("_", "-")
    if kind is bool:
        kwargs["action"] = "store_false" if field.default else "store_true"
        long = flag.name or ("--no-" if field.default else "--") + flag.field.replace("_", "-")
    elif typing.get_origin(base[0]) in (list, tuple):
        item = (typing.get_args(base[0]) or (str,))[0]
        kwargs["type"] = csv_numbers(item) if item in (int, float) else csv_list
        kwargs["metavar"] = "A,B,..."
        if flag.field in CHOICES:
            kwargs["help"] = kwargs["help"].rstrip(".") + f"; any of {','.join(CHOICES[flag.field])}"
    else:
        kwargs["type"] = base[0]
        if flag.field in CHOICES:
            kwargs["choices"] = CHOICES[flag.field]
    if flag.metavar:
        kwargs["metavar"] = flag.metavar
    return [*flag.aliases, long], kwargs


def add_flags(group: Any, cls: type, flags: tuple[Flag, ...]) -> None:
    """Register ``flags`` (fields of dataclass ``cls``) on an argparse parser or argument group."""
    for flag in flags:
        names, kwargs = _kwargs(cls, flag)
        group.add_argument(*names, **kwargs)


def given_values(args: argparse.Namespace, flags: tuple[Flag, ...]) -> dict[str, Any]:
    """``{field: value}`` of the ``flags`` the user gave (lists stay lists, as the YAML files have them)."""
    return {f.field: getattr(args, f.key) for f in flags if hasattr(args, f.key)}


# ------------------------------------------------------------------------- flags shared by train/evaluate

DATA_FLAGS = (
    Flag("dataset", ("-d",)), Flag("data_dir"), Flag("keypoints", ("-k",)),
    Flag("subjects_train", ("-str",)), Flag("subjects_test", ("-ste",)), Flag("actions"), Flag("cameras"),
    Flag("max_frames_per_sequence"),
)
#: Fields with the same name and meaning in TrainConfig and EvalConfig (and DataConfig.stride).
RUN_FLAGS = (Flag("checkpoint", ("-c",)), Flag("batch_size", ("-b",)), Flag("device"), Flag("seed"))
STRIDE_FLAG = (Flag("stride", ("-s",)),)
FRAMES_FLAG = (Flag("frames", ("-f",), help="window length T, a model setting (default: the preset's); "
                                               "evaluate checks it equals the checkpoint's"),)


def device_from_gpu_flag(gpu: str) -> str:
    """The seed's ``-gpu`` value -> a device string: ``0`` -> ``cuda:0``, ``0,1`` -> ``cuda:0,1``, ``cpu``."""
    gpu = gpu.strip()
    if gpu in ("", "cpu", "-1"):
        return "cpu"
    if not all(part.strip().isdigit() for part in gpu.split(",")):
        raise ValueError(f"-gpu expects GPU indices like 0 or 0,1 (or cpu), got {gpu!r}")
    return f"cuda:{gpu.replace(' ', '')}"


def add_shared_arguments(parser: argparse.ArgumentParser, config: type[TrainConfig | EvalConfig]) -> None:
    """Data, checkpoint, window and device flags of ``train`` and ``evaluate`` (with the seed's aliases).

    ``config`` is the command's config class: the shared flags take its field docstrings as help.
    """
    add_flags(parser.add_argument_group("data"), DataConfig, DATA_FLAGS)
    run = parser.add_argument_group("run")
    add_flags(run, config, RUN_FLAGS)
    add_flags(run, DataConfig if config is TrainConfig else EvalConfig, STRIDE_FLAG)
    add_flags(run, ModelConfig, FRAMES_FLAG)
    run.add_argument("-gpu", "--gpu", help="seed alias: GPU indices (0 or 0,1) -> --device cuda:0[,1]; "
                                           "several GPUs need torchrun")
    run.add_argument("--nolog", action="store_true", help="no progress bars and no TensorBoard (CSV logs "
                                                          "are still written)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")


def device_value(args: argparse.Namespace) -> dict[str, str]:
    """``{"device": ...}`` from ``-gpu`` or ``--device`` when one was given (``-gpu`` wins), else ``{}``."""
    if args.gpu is not None:
        return {"device": device_from_gpu_flag(args.gpu)}
    return {"device": args.device} if hasattr(args, "device") else {}


#: EvalConfig fields set by the evaluation flags (shared with `train --evaluate`, the seed's inference).
EVAL_FLAGS = (
    Flag("hypotheses", ("-num_proposals",)), Flag("steps", ("-sampling_timesteps",)), Flag("eta"),
    Flag("independent_hypotheses"),
    Flag("flip", dest="test_flip"), Flag("p2"), Flag("aggregations"),
    Flag("root_sources", name="--root-source"), Flag("weights"), Flag("camera_ids"), Flag("max_sequences"),
    Flag("split"),
)


def add_evaluation_flags(group: Any) -> None:
    add_flags(group, EvalConfig, EVAL_FLAGS)
