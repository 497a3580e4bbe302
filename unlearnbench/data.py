"""Image datasets as plain tensors in ``[-1, 1]``, with forget/retain subsets.

``digits16`` is bundled with scikit-learn and never downloads. ``mnist`` and ``cifar10`` come from
torchvision and are downloaded only when asked for; offline they fail with a one-line message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from unlearnbench.errors import UserError

DATASETS = ("digits16", "mnist", "cifar10")


@dataclass(frozen=True)
class ImageData:
    """A labelled train/test split. Images are float32 ``[N, C, H, W]`` in ``[-1, 1]``."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    class_names: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def subset(self, split: str, classes: Iterable[int]) -> tuple[Tensor, Tensor]:
        """Images and labels of ``split`` ('train' or 'test') whose label is in ``classes``."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        keep = torch.isin(y, torch.tensor(sorted(set(classes)), dtype=y.dtype))
        return x[keep], y[keep]

    def retain_classes(self, forget_classes: Iterable[int]) -> tuple[int, ...]:
        forget = set(forget_classes)
        return tuple(c for c in range(self.num_classes) if c not in forget)

    def fingerprint(self) -> str:
        """sha256 over the split's tensors: changes whenever the data or the split changes."""
        h = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(t.numpy().tobytes())
        return h.hexdigest()


def to_unit_range(images: Tensor) -> Tensor:
    """uint8-style ``[0, 255]`` (or ``[0, 1]`` floats) to ``[-1, 1]``."""
    images = images.float()
    if images.max() > 1.0:
        images = images / 255.0
    return images * 2.0 - 1.0


def load_digits16(seed: int = 0, test_fraction: float = 0.2) -> ImageData:
    """scikit-learn's 1797 8x8 digits, bilinearly upsampled to 16x16, seeded stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = torch.nn.functional.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 2.0 - 1.0).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=bunch.target)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return ImageData(
        name="digits16",
        train_x=images[train_idx],
        train_y=labels[train_idx],
        test_x=images[test_idx],
        test_y=labels[test_idx],
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
    )


def load_torchvision(name: str, root: str, download: bool) -> ImageData:
    """MNIST (28x28 padded to 32x32) or CIFAR-10 (32x32) through torchvision."""
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except (RuntimeError, OSError) as e:  # URLError and socket errors are OSErrors; torchvision's own, RuntimeErrors
        lines = str(e).strip().splitlines() or [type(e).__name__]  # MNIST's: "Error downloading F:\nTried ..."
        why = lines[0].rstrip(":") + (f" ({lines[-1].strip()})" if len(lines) > 1 else "")
        if download:  # MNIST tries its mirrors, then raises RuntimeError("Error downloading ...")
            raise UserError(f"could not download dataset {name!r} into {root!r} (offline?): {why}") from None
        if isinstance(e, OSError):
            raise UserError(f"dataset {name!r} in {root!r} cannot be read: {why}") from None
        raise UserError(
            f"dataset {name!r} is not in {root!r}; pass --download to fetch it (needs the network)"
        ) from None
    return from_arrays(
        name,
        np.asarray(train.data),
        np.asarray(train.targets),
        np.asarray(test.data),
        np.asarray(test.targets),
        tuple(train.classes),
    )


def from_arrays(
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    class_names: tuple[str, ...],
) -> ImageData:
    """Build :class:`ImageData` from uint8 arrays ``[N, H, W]`` or ``[N, H, W, C]``."""

    def prep(a: np.ndarray) -> Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
        t = to_unit_range(t)
        if t.shape[-1] == 28:  # MNIST: pad to a UNet-friendly 32x32
            t = torch.nn.functional.pad(t, (2, 2, 2, 2), value=-1.0)
        return t.contiguous()

    return ImageData(
        name=name,
        train_x=prep(train_x),
        train_y=torch.as_tensor(train_y, dtype=torch.long),
        test_x=prep(test_x),
        test_y=torch.as_tensor(test_y, dtype=torch.long),
        num_classes=len(class_names),
        class_names=class_names,
    )


def load_dataset(name: str, *, root: str | None = None, download: bool = False) -> ImageData:
    if name == "digits16":
        return load_digits16()
    if name in ("mnist", "cifar10"):
        import os

        root = root or os.path.join(os.path.expanduser("~"), ".cache", "unlearnbench", "data")
        return load_torchvision(name, root, download)
    from unlearnbench.errors import suggest

    raise UserError(f"unknown dataset {name!r}{suggest(name, DATASETS)} (known: {', '.join(DATASETS)})")
