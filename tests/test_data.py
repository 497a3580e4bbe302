from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnbench.data import from_arrays, load_dataset, load_digits16
from unlearnbench.errors import UserError


def test_digits16_split_is_deterministic_stratified_and_disjoint():
    a, b = load_digits16(), load_digits16()
    assert a.fingerprint() == b.fingerprint()
    assert a.train_x.shape == (1437, 1, 16, 16) and a.test_x.shape == (360, 1, 16, 16)
    assert a.train_x.min() >= -1 and a.train_x.max() <= 1
    # stratified: every class is 20% (+-1 image) of its total in the test split
    for c in range(10):
        n_test, n_train = int((a.test_y == c).sum()), int((a.train_y == c).sum())
        assert abs(n_test - 0.2 * (n_test + n_train)) <= 1
    # disjoint: no test image equals a train image of the same index set (images are distinct rows)
    assert load_digits16(seed=1).fingerprint() != a.fingerprint()


def test_forget_and_retain_subsets_partition_the_split():
    d = load_digits16()
    fx, fy = d.subset("train", [3, 7])
    rx, ry = d.subset("train", d.retain_classes([3, 7]))
    assert set(fy.tolist()) == {3, 7}
    assert 3 not in ry.tolist() and 7 not in ry.tolist()
    assert len(fx) + len(rx) == len(d.train_x)
    assert d.retain_classes([3, 7]) == (0, 1, 2, 4, 5, 6, 8, 9)


def test_cifar_shaped_arrays_become_unit_range_tensors():
    rng = np.random.default_rng(0)
    d = from_arrays(
        "cifar10",
        rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, 20),
        rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, 8),
        tuple(str(i) for i in range(10)),
    )
    assert d.image_shape == (3, 32, 32)
    assert d.train_x.dtype == torch.float32 and d.train_x.min() >= -1 and d.train_x.max() <= 1


def test_mnist_is_padded_to_32():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    d = from_arrays("mnist", x, np.arange(4), x, np.arange(4), tuple(str(i) for i in range(10)))
    assert d.image_shape == (1, 32, 32)


def test_torchvision_dataset_offline_fails_with_one_line(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", root=str(tmp_path), download=False)
    assert "\n" not in str(e.value) and "--download" in str(e.value)


def test_unknown_dataset_suggests():
    with pytest.raises(UserError, match="did you mean 'cifar10'"):
        load_dataset("cifar100")
