from __future__ import annotations

import os

os.environ.setdefault("UNLEARNBENCH_PROGRESS", "0")

import pytest
import torch

torch.set_num_threads(int(os.environ.get("UNLEARNBENCH_THREADS", "2")))


@pytest.fixture(scope="session")
def testbed():
    from unlearnbench.testbeds import load_testbed

    return load_testbed("digits16")
