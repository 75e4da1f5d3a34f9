"""Test-wide settings (one torch thread per process) and the shared fixtures of ``tests/helpers.py``.

The models under test are tiny and overhead-bound; on a shared 2-core machine two threads per process
made some tests ~30x slower (thread contention), and one thread is never slower for them.

Fixtures:

* ``tiny_model`` (per test module): a ``tiny`` PoseDiffusion seeded with 0, in eval mode. Module scope, so
  a module may train or modify it without affecting other modules.
* ``tiny_checkpoint`` (per test module): ``tiny_model`` saved as a checkpoint folder.
* ``synthetic_dataset`` (per session, read-only): ``(data_dir, name)`` of a ``prepare mocap`` dataset
  named "syn" made from ``helpers.synthetic_motions()`` (10 motions x 48 frames, pseudo-subjects S1-S11).
"""

import pytest
import torch

from tests import helpers


def pytest_configure(config):
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model():
    return helpers.make_tiny_model().eval()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_model):
    from posediffusion.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", tiny_model)


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    mocap = helpers.write_synthetic_mocap(root / "syn.npz")
    return helpers.prepare_dataset(mocap, root / "data", "syn"), "syn"
