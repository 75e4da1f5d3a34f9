"""Flags derived from the config dataclasses: help, types, choices, aliases and 'not given' semantics."""

import argparse
import dataclasses

import pytest

from posediffusion.cli import build_parser, main
from posediffusion.commands import evaluate as evaluate_command
from posediffusion.commands import train as train_command
from posediffusion.commands.flags import (
    EVAL_FLAGS,
    Flag,
    add_flags,
    csv_list,
    field_docs,
    given_values,
)
from posediffusion.config import PRESETS, EvalConfig, TrainConfig


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_field_docs_reads_the_attribute_docstrings():
    docs = field_docs(EvalConfig)
    assert docs["hypotheses"] == "H, hypotheses per window (the paper: 20)."
    assert set(docs) == {f.name for f in dataclasses.fields(EvalConfig)}  # every field documented


def test_every_config_field_flag_has_help_and_no_defaults_leak():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("train", "evaluate"):
        for action in sub.choices[name]._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
    args = _parse(["train"])
    assert given_values(args, train_command.OPTIMISER_FLAGS + train_command.CONTROL_FLAGS) == {}


def test_types_choices_and_seed_aliases():
    args = _parse(["train", "--preset", "tiny", "-lr", "1e-3", "-str", "S1, S5,", "-b", "4", "--resume"])
    assert (args.preset, args.lr, args.subjects_train, args.batch_size, args.resume) == (
        "tiny", 1e-3, ["S1", "S5"], 4, True)
    with pytest.raises(SystemExit):  # choices come from PRESETS
        _parse(["train", "--preset", "huge"])
    assert "huge" not in PRESETS
    args = _parse(["evaluate", "-c", "x", "-num_proposals", "3", "-sampling_timesteps", "2", "--no-flip"])
    config = evaluate_command.config_from_args(args)
    assert (config.hypotheses, config.steps, config.flip) == (3, 2, False)


def test_train_and_test_flip_flags_do_not_collide():
    args = _parse(["train", "--no-flip-augment"])
    config = train_command.config_from_args(args)
    assert config.data.flip is False
    assert not hasattr(args, "test_flip")


@pytest.mark.parametrize("argv", [
    ["evaluate", "-c", "x", "--hypotheses", "0"],
    ["evaluate", "-c", "x", "-b", "0"],
    ["evaluate", "-c", "x", "-sampling_timesteps", "0"],
    ["train", "--dry-run", "--max-steps", "0"],
    ["train", "--dry-run", "-b", "0"],
])
def test_zero_is_an_error_not_the_default(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0]


def test_given_values_returns_only_what_was_typed():
    parser = argparse.ArgumentParser()
    add_flags(parser, EvalConfig, EVAL_FLAGS)
    assert given_values(parser.parse_args([]), EVAL_FLAGS) == {}
    values = given_values(parser.parse_args(["--aggregations", "p-agg,j-agg", "--eta", "0"]), EVAL_FLAGS)
    assert values == {"aggregations": ["p-agg", "j-agg"], "eta": 0.0}


def test_flag_dest_and_negated_bool():
    parser = argparse.ArgumentParser()
    add_flags(parser, TrainConfig, (Flag("tensorboard"), Flag("overwrite", dest="other")))
    args = parser.parse_args(["--no-tensorboard", "--overwrite"])
    assert args.tensorboard is False and args.other is True
    assert csv_list(" a,,b ,") == ["a", "b"]


@pytest.mark.parametrize(("argv", "names"), [
    (["evaluate", "-c", "x", "--max-sequences", "0"], "max_sequences"),
    (["evaluate", "-c", "x", "-ste", ","], "subjects_test"),
    (["train", "--dry-run", "-str", ","], "subjects_train"),
    (["train", "--dry-run", "--grad-clip", "-1"], "grad_clip"),
    (["train", "--dry-run", "-lrd", "0"], "lr_decay"),
    (["train", "--dry-run", "-lr", "0"], "lr must be"),
    (["train", "--dry-run", "--seed", str(2**70)], "seed must be"),
    (["evaluate", "-c", "x", "--seed", "-1"], "seed must be"),
    (["evaluate", "-c", "x", "--eta", "-0.5"], "eta must be"),
])
def test_bad_values_are_errors_not_coerced(argv, names, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and names in err[0]
