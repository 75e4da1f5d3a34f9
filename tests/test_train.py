import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from posediffusion.cli import main
from posediffusion.config import DataConfig, TrainConfig, load_config_yaml, save_config_yaml
from posediffusion.data.selection import load_sequences, split_validation
from posediffusion.data.sequence import Sequence
from posediffusion.train import train
from tests.helpers import make_tiny_model


@pytest.fixture(scope="module")
def data_dir(synthetic_dataset):
    """The shared `prepare mocap` dataset named "syn" (10 short synthetic motions; tests/conftest.py)."""
    return synthetic_dataset[0]


def tiny_config(data_dir: Path, run_dir: Path, **overrides) -> TrainConfig:
    values = dict(preset="tiny", checkpoint=str(run_dir), epochs=2, batch_size=8, val_max_windows=4,
                  progress_bar=False, tensorboard=False, log_every_steps=1,
                  data={"dataset": "syn", "data_dir": str(data_dir), "max_frames_per_sequence": 18,
                        "val_fraction": 0.1})
    values.update(overrides)
    return TrainConfig.from_dict(values)


# ------------------------------------------------------------------------------------------- configs


def test_yaml_round_trip_and_published_defaults(tmp_path):
    config = TrainConfig.from_dict({"preset": "tiny", "lr": 1e-4,
                                    "data": {"dataset": "cmu", "keypoints": "det"}})
    save_config_yaml(config, tmp_path / "c.yaml")
    assert load_config_yaml(TrainConfig, tmp_path / "c.yaml") == config
    resolved = config.resolved()
    assert resolved.lr == 1e-4 and resolved.lr_decay == 0.993
    assert resolved.batch_size == 108  # 972 frames per batch / 9-frame windows
    assert resolved.data.stride == 9
    assert resolved.data.subjects_train == ["S1", "S5", "S6", "S7", "S8"]
    hp = TrainConfig.from_dict({"preset": "paper", "data": {"dataset": "3dhp"}}).resolved()
    assert (hp.lr, hp.lr_decay, hp.lr_schedule, hp.warmup_steps) == (7e-5, 0.995, "exponential", 0)
    assert hp.data.subjects_test is None  # all of TS1-TS6
    h36m = TrainConfig.from_dict({"preset": "paper"}).resolved()
    assert (h36m.lr, h36m.lr_decay, h36m.ema_decay) == (6e-5, 0.993, 0.999)  # the seed's, plus EMA
    small = TrainConfig.from_dict({"preset": "small", "ema_decay": 0.0}).resolved()
    assert (small.lr, small.lr_schedule, small.warmup_steps, small.ema_decay) == (4e-4, "cosine", 200, 0.0)


@pytest.mark.parametrize("values, key", [({"epoch": 3}, "epoch"), ({"data": {"datset": "h36m"}}, "datset")])
def test_unknown_config_keys_are_errors(tmp_path, values, key):
    with pytest.raises(ValueError, match=f"unknown key.*{key}"):
        TrainConfig.from_dict(values)
    text = "preset: tiny\nepoch: 1\n" if key == "epoch" else "data:\n  datset: x\n"
    (tmp_path / "c.yaml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--dry-run"]) == 2


def test_cli_seed_flags_and_dry_run(capsys):
    argv = ["train", "-d", "cmu", "-k", "cpn_ft_h36m_dbb", "-str", "S1,S5", "-ste", "S9", "-c", "ck/x",
            "-lr", "0.0002", "-lrd", "0.998", "-e", "7", "-b", "4", "-s", "3", "-f", "27",
            "--preset", "small", "--model", "graph=false", "--select-on-test", "--nolog", "--dry-run"]
    assert main(argv) == 0
    import yaml

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["dataset"] == "cmu" and printed["data"]["keypoints"] == "cpn_ft_h36m_dbb"
    assert printed["data"]["subjects_train"] == ["S1", "S5"] and printed["data"]["subjects_test"] == ["S9"]
    assert printed["data"]["stride"] == 3 and printed["model"] == {"graph": False, "frames": 27}
    optim = (printed["lr"], printed["lr_decay"], printed["epochs"], printed["batch_size"])
    assert optim == (2e-4, 0.998, 7, 4)
    assert printed["select_on_test"] and not printed["progress_bar"] and not printed["tensorboard"]
    assert main(["train", "--model", "widht=3", "--dry-run"]) == 2  # unknown model field


def test_cli_design_flag_sets_the_components_forms_and_model_overrides_win(capsys, tmp_path):
    import yaml

    assert main(["train", "--preset", "tiny", "--design", "paper", "--model", "smoothing=0.84",
                 "--nolog", "--dry-run"]) == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model == {"graph_mode": "convolution", "prompt_blocks": None, "energy_uses": "all",
                     "smoothing": 0.84, "temporal_patch": 1}  # the paper's forms; --model after --design
    # "default" resets a config file written in the paper's design
    (tmp_path / "paper.yaml").write_text("preset: tiny\nmodel:\n  graph_mode: convolution\n"
                                         "  prompt_blocks: null\n  energy_uses: all\n  smoothing: 0.5\n")
    assert main(["train", "--config", str(tmp_path / "paper.yaml"), "--design", "default", "--nolog",
                 "--dry-run"]) == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model == {"graph_mode": "attention_bias", "prompt_blocks": 1, "energy_uses": "smoothing",
                     "smoothing": 1.0, "temporal_patch": 9}
    with pytest.raises(SystemExit):  # argparse refuses other names
        main(["train", "--design", "improved", "--dry-run"])


def test_gpu_flag_maps_to_devices():
    from posediffusion.commands.flags import device_from_gpu_flag

    assert device_from_gpu_flag("0") == "cuda:0"
    assert device_from_gpu_flag("0,1") == "cuda:0,1"
    assert device_from_gpu_flag("cpu") == "cpu"
    with pytest.raises(ValueError, match="GPU indices"):
        device_from_gpu_flag("zero")


# ---------------------------------------------------------------------------------------------- data


def test_missing_files_and_wrong_keypoints_name(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match=r"data_3d_nope\.npz.*datasets in .*\['syn'\]"):
        load_sequences(DataConfig(dataset="nope", data_dir=str(data_dir), subjects_train=["S1"]), "train")
    with pytest.raises(FileNotFoundError, match=r"keypoints 'cpn'.*\['det', 'gt'\]"):
        load_sequences(DataConfig(dataset="syn", keypoints="cpn", data_dir=str(data_dir),
                                  subjects_train=["S1"]), "train")
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        load_sequences(DataConfig(data_dir=str(tmp_path / "absent")), "train")
    assert main(["train", "-d", "syn", "-k", "cpn", "--data-dir", str(data_dir), "-c", str(tmp_path / "r"),
                 "--preset", "tiny"]) == 2


def _seq(subject, action, camera, frames):
    return Sequence(np.zeros((frames, 17, 2), np.float32), subject=subject, action=action, camera_id=camera)


def test_validation_split_is_by_take_and_deterministic():
    sequences = [_seq(s, a, c, 10 * (i + 1)) for i, (s, a) in enumerate(
        [("S1", "A"), ("S1", "B"), ("S5", "A"), ("S5", "C"), ("S6", "D")]) for c in ("c1", "c2")]
    train_a, val_a = split_validation(sequences, 0.25, seed=3)
    train_b, val_b = split_validation(sequences, 0.25, seed=3)
    assert [s.name for s in val_a] == [s.name for s in val_b]
    val_takes = {(s.subject, s.action) for s in val_a}
    assert val_takes and not val_takes & {(s.subject, s.action) for s in train_a}
    assert len(train_a) + len(val_a) == len(sequences) and len(val_a) % 2 == 0  # both cameras of a take
    frames = sum(s.num_frames for s in val_a) / sum(s.num_frames for s in sequences)
    assert frames >= 0.25
    assert split_validation(sequences, 0.0, seed=3)[1] == []


# ------------------------------------------------------------------------------------ training loop


def _weights(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def test_checkpoints_logs_ema_and_max_steps_resume(tmp_path, data_dir):
    first = train(tiny_config(data_dir, tmp_path / "run", epochs=1, ema_decay=0.9))
    run = tmp_path / "run"
    assert first.progress.epoch == 1 and len(first.losses) == first.progress.global_step >= 4
    assert all(np.isfinite(first.losses))
    assert {p.name for p in run.iterdir()} >= {"last", "best", "config.yaml", "log.csv", "steps.csv"}
    assert (run / "last" / "ema.safetensors").is_file()
    log_rows = (run / "log.csv").read_text().splitlines()
    assert log_rows[0].startswith("epoch,") and log_rows[1].split(",")[4] == "validation"
    with pytest.raises(ValueError, match="already holds a training run"):
        train(tiny_config(data_dir, run, epochs=1))

    # a per-epoch schedule: the cosine's horizon includes max_steps by design, so a run planned with
    # --max-steps 3 and continued is not the run planned without it
    stopped = train(tiny_config(data_dir, tmp_path / "cut", epochs=1, ema_decay=0.9, max_steps=3,
                                lr_schedule="exponential", warmup_steps=0))
    assert stopped.stopped_early
    whole = train(tiny_config(data_dir, tmp_path / "whole", epochs=1, ema_decay=0.9,
                              lr_schedule="exponential", warmup_steps=0))
    assert stopped.losses == whole.losses[:3]
    rest = train(tiny_config(data_dir, tmp_path / "cut", epochs=1, ema_decay=0.9, resume=True,
                             lr_schedule="exponential", warmup_steps=0))
    assert rest.losses == whole.losses[3:]
    from safetensors.torch import load_file

    ema_first = load_file(str(tmp_path / "whole" / "last" / "ema.safetensors"))
    ema_cut = load_file(str(tmp_path / "cut" / "last" / "ema.safetensors"))
    assert all(torch.equal(ema_first[k], ema_cut[k]) for k in ema_first)


def test_resume_after_kill_mid_epoch_equals_uninterrupted_run(tmp_path, data_dir):
    reference = train(tiny_config(data_dir, tmp_path / "a"))
    steps_per_epoch = reference.progress.global_step // 2
    assert steps_per_epoch >= 4 and reference.progress.epoch == 2

    # kill -9 in the middle of epoch 2, two steps after a step-interval checkpoint
    save_at, kill_at = steps_per_epoch + 2, steps_per_epoch + 4
    script = (
        "import os, signal, sys, torch\n"
        "from posediffusion.config import TrainConfig\nfrom posediffusion.train import train\n"
        "torch.set_num_threads(1)\n"
        "config = TrainConfig.from_dict(eval(sys.argv[1]))\n"
        f"train(config, step_callback=lambda step, loss: step == {kill_at} and os.kill(os.getpid(), "
        "signal.SIGKILL))\n")
    values = tiny_config(data_dir, tmp_path / "b", save_every_steps=save_at).to_dict()
    proc = subprocess.run([sys.executable, "-c", script, repr(values)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    resumed = train(tiny_config(data_dir, tmp_path / "b", save_every_steps=save_at, resume=True))
    assert resumed.losses == reference.losses[save_at:]  # exactly the same losses
    ref_w, res_w = _weights(reference.model), _weights(resumed.model)
    assert all(torch.equal(ref_w[k], res_w[k]) for k in ref_w)
    steps_logged = (tmp_path / "b" / "steps.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in steps_logged] == list(range(1, 2 * steps_per_epoch + 1))


#: Runs under torchrun: `posediffusion.cli train ...` as a user would, keeping each rank's final weights
#: (the CLI looks up posediffusion.train.train when it runs, so wrapping it here sees every rank's result).
DDP_SCRIPT = """
import os, sys
import torch
import posediffusion.train as train_module
from posediffusion.cli import main

real_train = train_module.train

def train_and_keep_weights(*args, **kwargs):
    result = real_train(*args, **kwargs)
    weights = {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}
    torch.save(weights, os.path.join(sys.argv[1], "rank" + os.environ["RANK"] + ".pt"))
    return result

train_module.train = train_and_keep_weights
sys.exit(main(sys.argv[2:]))
"""


def test_torchrun_gloo_two_processes_through_the_cli(tmp_path, data_dir):
    """`torchrun --nproc_per_node=2 ... posediffusion.cli train` on CPU (gloo): both ranks hold identical,
    trained weights; rank 0 alone writes the checkpoint and reports."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), str(tmp_path), "train", "--preset", "tiny", "-d", "syn", "--data-dir",
               str(data_dir), "-c", str(tmp_path / "ddp"), "-b", "4", "--max-steps", "3",
               "--max-frames-per-sequence", "18", "--device", "cpu", "--nolog"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    initial = make_tiny_model().state_dict()  # the initial weights of a fresh run: training must move them
    assert any(not torch.equal(initial[k], rank0[k]) for k in initial)
    import json

    metadata = json.loads((tmp_path / "ddp" / "last" / "metadata.json").read_text())
    assert metadata["world_size"] == 2 and metadata["progress"]["global_step"] == 3
    assert proc.stdout.count("trained 0 epoch(s), 3 steps") == 1  # rank 0 reports


def test_select_on_test_is_recorded_and_labelled(tmp_path, data_dir, capsys):
    from posediffusion.evaluate import EvalConfig, evaluate, format_report

    train(tiny_config(data_dir, tmp_path / "run", epochs=1, select_on_test=True, amp="bf16"))
    import json

    metadata = json.loads((tmp_path / "run" / "best" / "metadata.json").read_text())
    assert metadata["selection"] == {**metadata["selection"], "split": "test", "select_on_test": True}
    report = evaluate(EvalConfig(checkpoint=str(tmp_path / "run"), hypotheses=1, steps=1,
                                 aggregations=("p-agg",))).report
    assert report["settings"]["select_on_test"] is True and report["settings"]["selection_split"] == "test"
    assert "[TEST SPLIT SELECTION]" in format_report(report)


def test_val_seed_holds_out_the_same_takes_for_every_run_seed(tmp_path, data_dir):
    from posediffusion.evaluate import EvalConfig, evaluate
    from posediffusion.train import prepare_splits

    data = {"dataset": "syn", "data_dir": str(data_dir), "max_frames_per_sequence": 18, "val_fraction": 0.3}
    trained_on = load_sequences(tiny_config(data_dir, tmp_path / "x", data=data).resolved().data, "train")

    def takes(sequences):
        return {(s.subject, s.action) for s in sequences}

    fixed = takes(split_validation(trained_on, 0.3, seed=5)[1])
    # run seeds whose own split differs from seed 5's, so that the check can fail
    seeds = [s for s in range(40) if takes(split_validation(trained_on, 0.3, seed=s)[1]) != fixed][:2]
    assert len(seeds) == 2
    for seed in seeds:
        config = tiny_config(data_dir, tmp_path / f"run{seed}", seed=seed, epochs=1, max_steps=1,
                             data={**data, "val_seed": 5}).resolved()
        _, val_seqs, split = prepare_splits(config)
        assert split == "validation" and takes(val_seqs) == fixed
    train(tiny_config(data_dir, tmp_path / "run", seed=seeds[0], epochs=1, max_steps=1,
                      data={**data, "val_seed": 5}))
    evaluation = evaluate(EvalConfig(checkpoint=str(tmp_path / "run"), checkpoint_name="last", hypotheses=1,
                                     steps=1, aggregations=("p-agg",), split="validation"))
    assert takes(evaluation.sequences) == fixed
    with pytest.raises(ValueError, match="val_seed must be a non-negative integer"):
        DataConfig(val_seed=-1)


def test_evaluate_split_validation_scores_exactly_the_takes_training_held_out(tmp_path, data_dir, capsys):
    from posediffusion.evaluate import EvalConfig, evaluate, format_report

    config = tiny_config(data_dir, tmp_path / "run", epochs=1, max_steps=2, seed=5,
                         data={"dataset": "syn", "data_dir": str(data_dir), "max_frames_per_sequence": 18,
                               "val_fraction": 0.3})
    train(config)
    # what the trainer held out: takes of its own training sequences (all cameras, cut to its 18 frames),
    # seeded by the run's seed; the evaluation cuts them to 12 frames without changing the split
    trained_on = load_sequences(config.resolved().data, "train")
    _, held_out = split_validation(trained_on, 0.3, seed=5)
    takes = {(s.subject, s.action) for s in held_out}
    assert takes and takes != {(s.subject, s.action) for s in trained_on}
    evaluation = evaluate(EvalConfig(checkpoint=str(tmp_path / "run"), checkpoint_name="last", hypotheses=1,
                                     steps=1, aggregations=("p-agg",), split="validation",
                                     data={"max_frames_per_sequence": 12}))
    assert {(s.subject, s.action) for s in evaluation.sequences} == takes
    report = evaluation.report
    settings = report["settings"]
    assert settings["split"] == "validation" and settings["sequences"] == len(held_out)
    assert settings["frames_scored"] == 12 * len(held_out)  # the eval's truncation, the run's split
    assert "VALIDATION takes of" in format_report(report)
    test = evaluate(EvalConfig(checkpoint=str(tmp_path / "run"), checkpoint_name="last", hypotheses=1,
                               steps=1, aggregations=("p-agg",))).report["settings"]
    assert test["split"] == "test"
    assert test["sequences"] == len(load_sequences(config.resolved().data, "test"))
    without = tiny_config(data_dir, tmp_path / "noval", epochs=1, max_steps=1,
                          data={"dataset": "syn", "data_dir": str(data_dir), "val_fraction": 0.0})
    train(without)
    with pytest.raises(ValueError, match="held out no validation takes"):
        evaluate(EvalConfig(checkpoint=str(tmp_path / "noval"), hypotheses=1, steps=1, split="validation"))
    with pytest.raises(ValueError, match="split must be one of"):
        EvalConfig(checkpoint="x", split="val")


def test_help_lists_the_seed_aliases(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("-str", "-ste", "-lrd", "-gpu", "--resume", "--save-every-steps", "--budget-min",
                 "--select-on-test", "-num_proposals", "-sampling_timesteps", "--evaluate", "--dry-run"):
        assert flag in out, flag


def test_ema_warm_up_follows_the_formula():
    from posediffusion.train import ExponentialMovingAverage

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ExponentialMovingAverage(model, decay=0.999)
    expected = 0.0
    for n in range(5):
        with torch.no_grad():
            model.weight.fill_(float(n + 1))
        ema.update(model, n)
        d = min(0.999, (1 + n) / (10 + n))  # hand-written warm-up: 0.1, 0.1818, 0.25, ...
        expected = d * expected + (1 - d) * (n + 1)
    assert ema.shadow["weight"].item() == pytest.approx(expected, rel=1e-6)
    assert expected > 3.0  # without warm-up the shadow would still be ~0.015


def test_budget_clock_is_validated_and_cpu_clock_counts_process_time(monkeypatch):
    import posediffusion.train as train_module

    with pytest.raises(ValueError, match="budget_clock"):
        TrainConfig(budget_clock="sundial")
    monkeypatch.setattr(train_module.time, "process_time", lambda: 12.5)
    monkeypatch.setattr(train_module.time, "monotonic", lambda: 99.0)
    assert train_module._budget_clock(TrainConfig(budget_clock="cpu")) == 12.5
    assert train_module._budget_clock(TrainConfig()) == 99.0


def test_budget_shorter_than_an_epoch_still_selects_and_step_validation_logs(tmp_path, data_dir):
    run = tmp_path / "short"
    result = train(tiny_config(data_dir, run, epochs=1, max_steps=3, val_every_steps=2))
    assert result.stopped_early and result.progress.epoch == 0  # never reached an epoch end
    rows = [line.split(",") for line in (run / "log.csv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    assert header[-1] == "at" and [(r[1], r[-1]) for r in rows] == [("2", "step"), ("3", "end")]
    assert all(r[header.index("selection_mpjpe_mm")] for r in rows)  # both scored
    assert (run / "best" / "metadata.json").is_file()  # a selected checkpoint although no epoch ended
    assert result.progress.selected_step == 3 and result.progress.best_step in (2, 3)
    resumed = train(tiny_config(data_dir, run, epochs=1, max_steps=3, val_every_steps=2, resume=True))
    assert resumed.losses == []  # nothing left to do: the end is not scored a second time
    assert len((run / "log.csv").read_text().splitlines()) == 3


def test_resume_takes_the_runs_config_and_refuses_conflicting_flags(tmp_path, data_dir, capsys):
    run = tmp_path / "r"
    train(tiny_config(data_dir, run, epochs=1, max_steps=2, ema_decay=0.9, seed=3))
    with pytest.raises(ValueError, match=r"differ from its config.yaml: batch_size, seed \(drop"):
        train(tiny_config(data_dir, run, epochs=1, max_steps=4, ema_decay=0.9, seed=4, batch_size=3,
                          resume=True))
    # the CLI continues from the saved settings (EMA, seed, data) without repeating them; budget may change
    assert main(["train", "-c", str(run), "--resume", "--max-steps", "3", "--quiet"]) == 0
    assert "3 steps" in capsys.readouterr().out
    assert (run / "last" / "ema.safetensors").is_file()
    assert main(["train", "-c", str(run), "--resume", "--seed", "5", "--max-steps", "4"]) == 2
    assert "seed" in capsys.readouterr().err


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    from posediffusion.run_log import RunLock

    with RunLock(tmp_path / "run"), pytest.raises(ValueError, match="another training run"):
        RunLock(tmp_path / "run").__enter__()
    with RunLock(tmp_path / "run"):  # released on exit (and by the OS when a process dies)
        pass


def test_learning_rate_schedules_by_hand():
    from posediffusion.config import PRESET_RECIPES, PRESETS
    from posediffusion.run_log import Progress
    from posediffusion.train import learning_rate

    assert set(PRESET_RECIPES) == set(PRESETS)
    cos = TrainConfig(preset="small", lr=1.0, lr_schedule="cosine", warmup_steps=4, min_lr_ratio=0.1)
    assert learning_rate(cos, Progress(global_step=0)) == pytest.approx(0.25)  # warm-up: step 1 of 4
    assert learning_rate(cos, Progress(global_step=9, schedule_fraction=0.5)) == pytest.approx(0.55)
    assert learning_rate(cos, Progress(global_step=9, schedule_fraction=1.0)) == pytest.approx(0.1)
    exp = TrainConfig(preset="paper", lr=2.0, lr_schedule="exponential", lr_decay=0.5, warmup_steps=0)
    assert learning_rate(exp, Progress(global_step=50, epoch=3)) == pytest.approx(0.25)


def test_a_short_cosine_run_ends_at_the_final_rate_and_exempt_parameters_do_not_decay(tmp_path, data_dir):
    from posediffusion.train import parameter_groups

    result = train(tiny_config(data_dir, tmp_path / "cos", max_steps=6, warmup_steps=2, lr=1e-3,
                               min_lr_ratio=0.1, lr_schedule="cosine"))
    rows = (tmp_path / "cos" / "steps.csv").read_text().splitlines()[1:]
    lrs = [float(r.split(",")[3]) for r in rows]
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (
        1 + np.cos(np.pi * 1 / 6))))  # warm-up, then the cosine at 1/6 of max_steps
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))  # decreasing after warm-up
    assert result.progress.schedule_fraction == 1.0

    class Exempt(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(2, 2), torch.nn.Parameter(torch.zeros(1))

        def no_weight_decay(self):
            return ["b"]

    groups = parameter_groups(Exempt(), 0.1)
    assert [len(g["params"]) for g in groups] == [2, 1] and groups[1]["weight_decay"] == 0.0


def test_resume_keeps_the_network_the_run_was_built_with(tmp_path, data_dir):
    """A run whose checkpoint predates a ModelConfig key resumes with the key's legacy value."""
    import dataclasses
    import json

    from posediffusion.config import LEGACY_MODEL_DEFAULTS

    run = tmp_path / "old"
    train(tiny_config(data_dir, run, epochs=1, max_steps=2, model={"conditioning": "adaln"}))
    config_file = run / "last" / "config.json"
    stored = json.loads(config_file.read_text())
    assert LEGACY_MODEL_DEFAULTS["model"]["conditioning"] == "adaln"
    del stored["model"]["model"]["conditioning"]  # as written before the key existed
    config_file.write_text(json.dumps(stored))
    saved = load_config_yaml(TrainConfig, run / "config.yaml")
    save_config_yaml(dataclasses.replace(saved, model={}), run / "config.yaml")  # as the old code wrote it
    resumed = train(tiny_config(data_dir, run, epochs=1, max_steps=3, resume=True))
    assert resumed.model.config.model.conditioning == "adaln" and len(resumed.losses) == 1


def test_snapshots_are_written_when_their_minutes_have_passed(tmp_path, data_dir, monkeypatch):
    import posediffusion.train as train_module

    clock = iter(range(0, 10_000, 30))  # every reading of the CPU clock advances it by 30 s
    monkeypatch.setattr(train_module.time, "process_time", lambda: float(next(clock)))
    run = tmp_path / "snap"
    train(tiny_config(data_dir, run, epochs=1, max_steps=6, budget_clock="cpu", snapshot_minutes=[2, 1, 50]))
    written = sorted(p.name for p in (run / "snapshots").iterdir())
    assert written == ["1min", "2min"]  # 50 minutes never passed in 6 steps
    assert (run / "snapshots" / "1min" / "metadata.json").is_file()
    assert not (run / "snapshots" / "1min" / "training_state.pt").exists()  # model only
    first = json.loads((run / "snapshots" / "1min" / "metadata.json").read_text())["progress"]["global_step"]
    second = json.loads((run / "snapshots" / "2min" / "metadata.json").read_text())["progress"]["global_step"]
    assert 1 <= first < second <= 6
    with pytest.raises(ValueError, match="snapshot_minutes"):
        TrainConfig(snapshot_minutes=[0])


def test_process_group_backend_shares_a_gpu_through_gloo():
    """NCCL only where every local process has its own GPU (it refuses two ranks on one device)."""
    from posediffusion.runtime import process_group_backend

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert process_group_backend(cuda, 2, 2) == "nccl"
    assert process_group_backend(cuda, 1, 8) == "nccl"
    assert process_group_backend(cuda, 2, 1) == "gloo"
    assert process_group_backend(cuda, 7, 4) == "gloo"
    assert process_group_backend(cpu, 2, 0) == "gloo"
    assert process_group_backend(cpu, 1, 8) == "gloo"
