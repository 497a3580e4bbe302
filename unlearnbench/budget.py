"""How paper budgets on CIFAR-10 are scaled to a testbed.

Rule: keep the number of passes over the training data. A CIFAR-10 schedule of ``S`` iterations at batch
``B`` visits ``S*B`` images of a 50,000-image training set; on digits16's 1,437 training images the same
number of epochs at the same batch is ``S * 1437 / 50000`` iterations (x0.0287). Each method records the
paper's value beside the scaled default.
"""

from __future__ import annotations

CIFAR10_TRAIN_IMAGES = 50_000
DIGITS16_TRAIN_IMAGES = 1_437
SCALE = DIGITS16_TRAIN_IMAGES / CIFAR10_TRAIN_IMAGES


def scaled_steps(paper_steps: int) -> int:
    """``round(paper_steps * 1437 / 50000)``, at least 1."""
    return max(1, round(paper_steps * SCALE))
