"""Tests for posediffusion.config: defaults, validation, presets, overrides, dict and YAML round trips."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from posediffusion.config import (
    PRESETS,
    DiffusionConfig,
    ModelConfig,
    PoseDiffusionConfig,
    load_yaml,
    preset,
    save_yaml,
)


def test_defaults_have_all_switches_on_and_d3dp_diffusion():
    model, diffusion = ModelConfig(), DiffusionConfig()
    assert model.graph and model.semantic_prompts and model.motion_prompts and model.energy_regulator
    assert (model.num_joints, model.mlp_ratio) == (17, 2.0)
    assert (diffusion.num_steps, diffusion.s, diffusion.scale, diffusion.clamp) == (1000, 0.008, 1.0, 1.1)
    assert (diffusion.velocity_weight, diffusion.eta, diffusion.smoothing) == (0.0, 1.0, 0.5)


def test_presets():
    paper = preset("paper").model
    assert (paper.width, paper.depth, paper.frames, paper.heads) == (512, 8, 243, 8)
    tiny = preset("tiny").model
    assert (tiny.width, tiny.depth, tiny.frames) == (32, 2, 9)
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.model.width % cfg.model.heads == 0


def test_preset_overrides_reach_both_sections():
    cfg = preset("small", energy_regulator=False, velocity_weight=0.5, frames=9)
    assert not cfg.model.energy_regulator and cfg.model.frames == 9
    assert cfg.diffusion.velocity_weight == 0.5
    assert preset("small").model.energy_regulator  # presets are not mutated


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="unknown preset 'large'"):
        preset("large")
    with pytest.raises(ValueError, match="graphs"):
        preset("tiny", graphs=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 30, "heads": 4}, "must divide width"),
        ({"attention": "flash"}, "attention must be in"),
        ({"dropout": 1.0}, "dropout"),
        ({"depth": 0}, "depth must be a positive"),
        ({"width": 64.0}, "width must be a positive integer"),
        ({"graph": "yes"}, "graph must be true or false"),
        ({"prompt_init": "clip"}, "prompt_init"),
        ({"energy_sigma": -1.0}, "energy_sigma"),
    ],
)
def test_model_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_steps": 0}, "num_steps"),
        ({"eta": -0.1}, "eta"),
        ({"smoothing": 1.5}, "smoothing"),
        ({"velocity_weight": -1.0}, "velocity_weight"),
        ({"clamp": 0.0}, "clamp"),
    ],
)
def test_diffusion_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffusionConfig(**kwargs)


def test_dict_round_trip_and_unknown_keys():
    cfg = preset("base", graph_hops=2, eta=0.5)
    data = cfg.to_dict()
    assert data["model"]["graph_hops"] == 2 and data["diffusion"]["eta"] == 0.5
    assert PoseDiffusionConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="unknown key"):
        PoseDiffusionConfig.from_dict({"model": {"widht": 8}})
    with pytest.raises(ValueError, match="unknown section"):
        PoseDiffusionConfig.from_dict({"train": {}})
    assert PoseDiffusionConfig.from_dict({}) == PoseDiffusionConfig()


def test_yaml_round_trip(tmp_path):
    cfg = preset("tiny", motion_prompts=False, smoothing=0.25)
    path = tmp_path / "sub" / "model.yaml"
    save_yaml(cfg, path)
    assert yaml.safe_load(path.read_text())["model"]["motion_prompts"] is False
    assert load_yaml(path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["model.yaml"]  # no temp file left behind


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  width: 64\n  colour: red\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*colour"):
        load_yaml(path)
    path.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_yaml(path)
    path.write_text("model:\n  width: 30\n  heads: 4\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*divide"):
        load_yaml(path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_yaml(tmp_path / "missing.yaml")


def test_configs_are_plain_dataclasses():
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    expected = {
        "num_joints",
        "frames",
        "width",
        "depth",
        "heads",
        "mlp_ratio",
        "attention",
        "dropout",
        "graph",
        "semantic_prompts",
        "motion_prompts",
        "energy_regulator",
        "graph_hops",
    }
    assert fields >= expected
