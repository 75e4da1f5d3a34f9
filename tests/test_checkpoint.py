import json
import pickle
from pathlib import Path

import pytest
import torch

from posediffusion import checkpoint as ck
from posediffusion.config import DEFAULT_DESIGN, LEGACY_MODEL_DEFAULTS
from posediffusion.model.pose_diffusion import PoseDiffusion
from tests.helpers import REPO

BUNDLED_MODEL = REPO / "src" / "posediffusion" / "assets" / "cmu_small"


@pytest.fixture(scope="module")
def tiny(tiny_model):
    """The shared seeded tiny model (tests/conftest.py; one instance per module: a test here trains it)."""
    return tiny_model


def _save(path, model, **kwargs):
    return ck.save_checkpoint(path, model, run_config={"preset": "tiny"}, metadata={"kind": "last", "n": 3},
                              **kwargs)


def test_round_trip_weights_config_state_and_ema(tmp_path, tiny):
    optimizer = torch.optim.AdamW(tiny.parameters(), lr=1e-3)
    tiny.training_loss(torch.zeros(2, 9, 17, 2), torch.zeros(2, 9, 17, 3)).backward()
    optimizer.step()
    ema = {k: v + 1.0 if v.is_floating_point() else v for k, v in tiny.state_dict().items()}
    _save(tmp_path / "last", tiny, training_state={"optimizer": optimizer.state_dict(), "step": 7},
          ema_weights=ema)

    read = ck.read_checkpoint(tmp_path)  # run folder without best/ -> last/
    assert read.path == tmp_path / "last"
    assert read.metadata == {"kind": "last", "n": 3}
    assert read.run_config == {"preset": "tiny"}
    assert read.model_config == tiny.config.to_dict()
    for key, value in tiny.state_dict().items():
        assert torch.equal(read.weights()[key], value), key
        assert torch.equal(read.weights(ema=True)[key], ema[key]), key
    state = read.training_state()
    assert state["step"] == 7
    moment = next(iter(optimizer.state_dict()["state"].values()))["exp_avg"]
    assert torch.equal(next(iter(state["optimizer"]["state"].values()))["exp_avg"], moment)

    model, loaded = ck.load_model(tmp_path)  # EMA weights by default when present
    assert loaded.metadata["weights"] == "ema"
    key = next(k for k, v in ema.items() if v.is_floating_point())
    assert torch.equal(model.state_dict()[key], ema[key])
    raw, _ = ck.load_model(tmp_path, ema=False)
    assert torch.equal(raw.state_dict()[key], tiny.state_dict()[key])
    assert not raw.training


def test_refuses_checkpoint_of_another_preset(tmp_path, tiny):
    _save(tmp_path / "ckpt", tiny)
    small = PoseDiffusion.from_preset("small")
    with pytest.raises(ValueError, match=r"different model configuration.*width: checkpoint 32, model 64"):
        ck.load_weights_into(small, ck.read_checkpoint(tmp_path / "ckpt"))


def test_refuses_weights_that_do_not_fit_the_stored_config(tmp_path, tiny):
    _save(tmp_path / "ckpt", PoseDiffusion.from_preset("tiny", width=16, heads=4))
    config = json.loads((tmp_path / "ckpt" / ck.CONFIG_FILE).read_text())
    config["model"] = tiny.config.to_dict()  # config says width 32, weights are width 16
    (tmp_path / "ckpt" / ck.CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="shape mismatch"):
        ck.load_model(tmp_path / "ckpt")


def test_replacing_a_checkpoint_is_atomic(tmp_path, tiny):
    _save(tmp_path / "last", tiny)
    before = (tmp_path / "last" / ck.WEIGHTS_FILE).read_bytes()
    with pytest.raises(RuntimeError), ck.atomic_directory(tmp_path / "last") as tmp:
        (tmp / ck.WEIGHTS_FILE).write_bytes(b"half")
        raise RuntimeError("killed while writing")
    assert (tmp_path / "last" / ck.WEIGHTS_FILE).read_bytes() == before
    _save(tmp_path / "last", tiny)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temporary folders left


def test_resolve_prefers_best_and_recovers_an_interrupted_swap(tmp_path, tiny):
    _save(tmp_path / "last", tiny)
    _save(tmp_path / "best", tiny)
    assert ck.resolve_checkpoint(tmp_path) == tmp_path / "best"
    assert ck.resolve_checkpoint(tmp_path, "last") == tmp_path / "last"
    # a crash between the two renames leaves only ".last.old-*"
    (tmp_path / "last").rename(tmp_path / ".last.old-abc")
    assert ck.resolve_checkpoint(tmp_path, "last") == tmp_path / ".last.old-abc"
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        ck.resolve_checkpoint(tmp_path / "nothing")


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.target),))


def test_training_state_never_executes_code(tmp_path, tiny):
    _save(tmp_path / "ckpt", tiny, training_state={"step": 1})
    _Payload.target = str(tmp_path / "pwned")
    with open(tmp_path / "ckpt" / ck.STATE_FILE, "wb") as fh:
        pickle.dump({"step": _Payload()}, fh, protocol=2)
    with pytest.raises(ValueError, match="cannot read training state safely"):
        ck.read_checkpoint(tmp_path / "ckpt").training_state()
    assert not (tmp_path / "pwned").exists()


def test_corrupt_weights_give_a_clear_error(tmp_path, tiny):
    _save(tmp_path / "ckpt", tiny)
    (tmp_path / "ckpt" / ck.WEIGHTS_FILE).write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="unreadable safetensors"):
        ck.load_model(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="no EMA weights"):
        ck.read_checkpoint(tmp_path / "ckpt").weights(ema=True)


def test_leftovers_of_crashed_writes_are_cleaned_and_the_newest_old_folder_wins(tmp_path, tiny):
    import os
    import time

    _save(tmp_path / "last", tiny)
    (tmp_path / "last").rename(tmp_path / ".last.old-zzz")  # older, but sorts last by name
    time.sleep(0.01)
    _save(tmp_path / "newer", tiny)
    (tmp_path / "newer").rename(tmp_path / ".last.old-aaa")
    os.utime(tmp_path / ".last.old-zzz", (1, 1))
    (tmp_path / ".last.tmp-crashed").mkdir()  # a write that died before its rename
    assert ck.resolve_checkpoint(tmp_path / "last") == tmp_path / ".last.old-aaa"  # by age, not by name
    assert ck.resolve_checkpoint(tmp_path, "last") == tmp_path / ".last.old-aaa"
    _save(tmp_path / "last", tiny)  # the next write restores, replaces and cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_unreadable_training_state_is_one_line_without_unsafe_advice(tmp_path, tiny):
    _save(tmp_path / "ckpt", tiny, training_state={"step": 1})
    (tmp_path / "ckpt" / ck.STATE_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="cannot read training state safely") as info:
        ck.read_checkpoint(tmp_path / "ckpt").training_state()
    assert "\n" not in str(info.value) and "weights_only=False" not in str(info.value)


# ------------------------------------------------------------------- checkpoints older than their config keys


def _strip_new_keys(config: dict) -> dict:
    """A stored model config as written before the keys of ``LEGACY_MODEL_DEFAULTS`` existed."""
    return {section: {k: v for k, v in values.items() if k not in LEGACY_MODEL_DEFAULTS.get(section, {})}
            for section, values in config.items()}


def test_a_config_without_the_new_keys_builds_the_legacy_model():
    old = _strip_new_keys(PoseDiffusion.from_preset("tiny").config.to_dict())
    old["model"]["energy_sigma"] = 1.0  # stored by every old checkpoint
    model = ck.build_model(old)
    m, d = model.config.model, model.config.diffusion
    assert (m.conditioning, m.prompt_kv) == ("adaln", "per_block")
    assert (m.motion_features, m.energy_kind) == ("raw_2d", "raw_2d")
    assert (d.smoothing_mode, d.smoothing_in_loss) == ("with_regulator", False)
    names = {name for name, _ in model.named_parameters()}
    assert {"denoiser.spatial_blocks.0.modulation.weight", "denoiser.final_modulation.weight",
            "denoiser.spatial_blocks.0.prompt_attn.key_value.weight"} <= names
    assert PoseDiffusion.from_preset("tiny").config.model.conditioning == "adaln_single"  # new models


def test_an_old_checkpoint_loads_and_samples_as_before(tmp_path):
    torch.manual_seed(0)
    legacy = {**LEGACY_MODEL_DEFAULTS["model"], **LEGACY_MODEL_DEFAULTS["diffusion"]}
    original = PoseDiffusion.from_preset("tiny", **legacy).eval()
    _save(tmp_path / "old", original)
    config_file = tmp_path / "old" / ck.CONFIG_FILE
    stored = json.loads(config_file.read_text())
    stored["model"] = _strip_new_keys(stored["model"])
    config_file.write_text(json.dumps(stored))
    assert "conditioning" not in json.loads(config_file.read_text())["model"]["model"]

    model, checkpoint = ck.load_model(tmp_path / "old")
    assert checkpoint.model_config == original.config.to_dict()  # absent keys read as their legacy values
    x2d = 0.2 * torch.randn(2, 9, 17, 2, generator=torch.Generator().manual_seed(1))
    sample = [m.sample(x2d, num_hypotheses=2, steps=3, generator=torch.Generator().manual_seed(2))
              for m in (original, model)]
    assert torch.equal(sample[0], sample[1])


def test_the_bundled_model_is_todays_default_design_with_the_missing_joint_input():
    model, checkpoint = ck.load_model(BUNDLED_MODEL)
    stored = json.loads((BUNDLED_MODEL / ck.CONFIG_FILE).read_text())["model"]
    # written with today's keys: nothing is filled from LEGACY_MODEL_DEFAULTS
    assert stored["model"]["conditioning"] == "adaln_single" and stored["model"]["joint_mask"] is True
    assert stored["model"]["temporal_patch"] == 9 and stored["model"]["graph_mode"] == "attention_bias"
    assert model.config.model.joint_mask and model.config.model.energy_kind == "smoothed_speed"
    assert all(model.config.model.__dict__[k] for k in ("graph", "semantic_prompts", "motion_prompts",
                                                          "energy_regulator"))
    # trained in the default design (retrained 2026-12-01), every key of it as stored
    cfg = model.config
    design = {**{k: getattr(cfg.model, k) for k in DEFAULT_DESIGN if hasattr(cfg.model, k)},
              **{k: getattr(cfg.diffusion, k) for k in DEFAULT_DESIGN if hasattr(cfg.diffusion, k)}}
    assert design == DEFAULT_DESIGN
    assert model.denoiser.spatial_blocks[0].graph is None  # the graph is an attention bias, not a branch
    data = checkpoint.run_config["data"]
    assert data["camera_augmentation"] and data["subjects_test"] == ["S9", "S11"]
    assert checkpoint.run_config["joint_dropout"] == 0.2
    assert "mocap.cs.cmu.edu" in checkpoint.metadata["credit"]
    assert not (BUNDLED_MODEL / "training_state.pt").exists()
