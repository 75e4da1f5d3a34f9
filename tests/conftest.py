"""Test-wide settings: one torch thread per process.

The models under test are tiny and overhead-bound; on a shared 2-core machine two threads per process
made some tests ~30x slower (thread contention), and one thread is never slower for them.
"""

import torch


def pytest_configure(config):
    torch.set_num_threads(1)
