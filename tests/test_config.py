"""Tests for posediffusion.config: defaults, validation, presets, overrides, dict and YAML round trips."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from posediffusion.config import (
    D3DP_BASELINE,
    DEFAULT_DESIGN,
    LEGACY_MODEL_DEFAULTS,
    PAPER_DESIGN,
    PRESETS,
    DiffusionConfig,
    ModelConfig,
    PoseDiffusionConfig,
    load_yaml,
    preset,
    save_yaml,
    with_legacy_defaults,
)


def test_defaults_have_all_switches_on_and_d3dp_diffusion():
    model, diffusion = ModelConfig(), DiffusionConfig()
    assert model.graph and model.semantic_prompts and model.motion_prompts and model.energy_regulator
    assert (model.num_joints, model.mlp_ratio) == (17, 2.0)
    assert (diffusion.num_steps, diffusion.s, diffusion.scale, diffusion.clamp) == (1000, 0.008, 1.0, 1.1)
    assert (diffusion.velocity_weight, diffusion.eta, diffusion.smoothing) == (0.0, 1.0, 1.0)
    # the design chosen on validation takes (benchmarks/RESULTS.md), not the paper's (PAPER_DESIGN)
    assert (model.graph_mode, model.prompt_blocks, model.energy_uses) == ("attention_bias", 1, "smoothing")


def test_paper_design_restores_the_papers_components():
    cfg = preset("small", **PAPER_DESIGN)
    model = cfg.model
    assert (model.graph_mode, model.prompt_blocks, model.energy_uses) == ("convolution", None, "all")
    assert cfg.diffusion.smoothing == 0.5 and cfg.model.gains_in_network
    assert cfg.model.prompt_attention_blocks == cfg.model.depth
    assert not preset("small").model.gains_in_network and preset("small").model.prompt_attention_blocks == 1


def test_default_design_names_the_dataclass_defaults_of_the_paper_design_keys():
    assert set(DEFAULT_DESIGN) == set(PAPER_DESIGN)
    model, diffusion = ModelConfig(), DiffusionConfig()
    defaults = {key: getattr(model if hasattr(model, key) else diffusion, key) for key in DEFAULT_DESIGN}
    assert defaults == DEFAULT_DESIGN
    # a config built in the paper design goes back to the default one with DEFAULT_DESIGN
    assert preset("small", **{**PAPER_DESIGN, **DEFAULT_DESIGN}) == preset("small")


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
        ({"energy_sigma": 0.0}, "energy_sigma must be > 0 with energy_kind"),
        ({"conditioning": "film"}, "conditioning must be in"),
        ({"prompt_kv": "cached"}, "prompt_kv must be in"),
        ({"motion_features": "scaled"}, "motion_features must be in"),
        ({"energy_kind": "jitter"}, "energy_kind must be in"),
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
        ({"smoothing_mode": "never"}, "smoothing_mode"),
        ({"smoothing_in_loss": 1}, "smoothing_in_loss must be true or false"),
    ],
)
def test_diffusion_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffusionConfig(**kwargs)


def test_new_models_get_the_new_defaults_and_stored_configs_the_legacy_ones():
    new = PoseDiffusionConfig()
    m = new.model
    assert (m.conditioning, m.prompt_kv) == ("adaln_single", "shared")
    assert (m.motion_features, m.energy_kind, m.energy_sigma) == ("bounded", "smoothed_speed", 3.0)
    assert (new.diffusion.smoothing_mode, new.diffusion.smoothing_in_loss) == ("always", True)
    assert PoseDiffusionConfig.from_dict({}) == new  # a config FILE without the keys: today's defaults
    # a STORED config without the keys (a checkpoint written before they existed): what it was trained with
    old = preset("small").to_dict()
    for section, keys in LEGACY_MODEL_DEFAULTS.items():
        for key in keys:
            old[section].pop(key)
    legacy = PoseDiffusionConfig.from_checkpoint_dict(old)
    for section, values in LEGACY_MODEL_DEFAULTS.items():
        assert {k: getattr(getattr(legacy, section), k) for k in values} == values
    assert legacy.model.width == 64
    # keys that are present win; the helper does not mutate its input
    stored = preset("small", conditioning="additive").to_dict()
    assert PoseDiffusionConfig.from_checkpoint_dict(stored) == preset("small", conditioning="additive")
    assert "conditioning" not in old["model"] and with_legacy_defaults(old) is not old
    assert with_legacy_defaults([1]) == [1]  # not a mapping: left for from_dict to reject


@pytest.mark.parametrize(("regulator", "uses", "expected"),
                         [(True, "all", True), (True, "smoothing", False), (False, "all", False)])
def test_gains_act_in_the_network_only_with_the_regulator_and_energy_uses_all(regulator, uses, expected):
    assert ModelConfig(energy_regulator=regulator, energy_uses=uses).gains_in_network is expected


def test_d3dp_baseline_overrides():
    cfg = preset("paper", **D3DP_BASELINE)
    assert not (cfg.model.graph or cfg.model.semantic_prompts or cfg.model.motion_prompts
                or cfg.model.energy_regulator)
    assert cfg.model.conditioning == "additive" and cfg.diffusion.smoothing == 0.0


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
        "conditioning",
        "prompt_kv",
        "motion_features",
        "energy_kind",
    }
    assert fields >= expected


# ----------------------------------------------------------------------------- one builder for every config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": "fast"}, "run.yaml: lr must be a number or null, got 'fast'"),
        ({"epochs": 1.5}, "run.yaml: epochs must be an integer, got 1.5"),
        ({"resume": "yes"}, "run.yaml: resume must be true or false"),
        ({"data": {"subjects_train": "S1"}}, "run.yaml: data: subjects_train must be a list of strings"),
        ({"data": {"val_fraction": 2.0}}, "run.yaml: data: DataConfig: val_fraction must be in"),
        ({"data": {"dataset": "cmu", "nope": 1}}, r"run.yaml: data: unknown key\(s\) \['nope'\]"),
        ({"amp": "fp8"}, "run.yaml: TrainConfig: amp must be one of"),
    ],
)
def test_build_config_errors_name_the_source_and_field(values, message):
    from posediffusion.config import TrainConfig, build_config

    with pytest.raises(ValueError, match=message) as info:
        build_config(TrainConfig, values, "run.yaml")
    assert "\n" not in str(info.value)


def test_build_config_nests_and_round_trips_through_yaml(tmp_path):
    from posediffusion.config import (
        EvalConfig,
        TrainConfig,
        build_config,
        config_to_dict,
        load_config_yaml,
        save_config_yaml,
    )

    config = build_config(TrainConfig, {"lr": 1, "data": {"dataset": "cmu", "subjects_train": ["S1"]}}, "x")
    assert config.data.dataset == "cmu" and config.lr == 1
    save_config_yaml(config, tmp_path / "run.yaml")
    assert load_config_yaml(TrainConfig, tmp_path / "run.yaml") == config
    evaluation = build_config(EvalConfig, {"checkpoint": "c", "aggregations": ["p-agg"]}, "x")
    assert evaluation.aggregations == ("p-agg",)  # lists from YAML/flags become the declared tuples
    assert config_to_dict(evaluation)["aggregations"] == ["p-agg"]


@pytest.mark.parametrize("text", ["- a\n- b\n", "lr: [1\n", "just text\n"])
def test_yaml_that_is_not_a_mapping_is_one_line_error(tmp_path, text):
    from posediffusion.config import TrainConfig, load_config_yaml

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.yaml") as info:
        load_config_yaml(TrainConfig, path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("field", ["width", "depth", "frames", "num_joints"])
def test_network_sizes_are_bounded(field):
    """A config from an untrusted checkpoint cannot ask for terabytes (width 2**20 would)."""
    with pytest.raises(ValueError, match=f"{field} must be <="):
        ModelConfig(**{field: 2**20})
    with pytest.raises(ValueError, match=f"checkpoint.json: model: ModelConfig: {field} must be <="):
        PoseDiffusionConfig.from_dict({"model": {field: 2**20}}, source="checkpoint.json")
