"""The text16 data: scikit-learn's digits drawn as coloured 16x16 RGB images in several stroke weights, and the
caption grammar (``grammar.toml``) that describes them.

An image's attributes are drawn into its pixels: the object is the digit, the colour is the ink's palette entry
(every foreground pixel is ``intensity x palette RGB`` on black, so :func:`colour_of` reads it back exactly) and
the style is a morphological operation on the grey intensity (thin: a sharper threshold, bold: a 3x3 dilation).
Nothing downloads: the digits ship with scikit-learn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unlearnbench.errors import UserError

GRAMMAR = Path(__file__).resolve().parent / "grammar.toml"
FAMILIES = ("object", "colour", "style")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Ink colours as RGB directions. Every entry's brightest channel is 1, so an image's grey intensity is its
# brightest channel, and no two entries are parallel, so the direction of the mean ink colour names the entry.
# The seven non-black corners of the RGB cube are mutually at least 35 degrees apart; orange sits halfway (22.5
# degrees) between red and yellow, the largest gap that still has a common name.
PALETTE: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("red", (1.0, 0.0, 0.0)),
    ("orange", (1.0, 0.41, 0.0)),
    ("yellow", (1.0, 1.0, 0.0)),
    ("green", (0.0, 1.0, 0.0)),
    ("cyan", (0.0, 1.0, 1.0)),
    ("blue", (0.0, 0.0, 1.0)),
    ("magenta", (1.0, 0.0, 1.0)),
    ("white", (1.0, 1.0, 1.0)),
)
COLOURS = tuple(name for name, _ in PALETTE)
STYLES = ("thin", "regular", "bold")


def palette_rgb() -> Tensor:
    """The palette as a float32 ``[len(PALETTE), 3]`` tensor of RGB values in ``[0, 1]``."""
    return torch.tensor([rgb for _, rgb in PALETTE], dtype=torch.float32)


# -- images --------------------------------------------------------------------------------------------------


def grey_digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's 1797 digits as grey intensities ``[N, 1, 16, 16]`` in ``[0, 1]`` (bilinear upsampling, as
    ``load_digits16``) and their digits ``[N]``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    grey = torch.nn.functional.interpolate(grey, size=(16, 16), mode="bilinear", align_corners=False).clamp(0, 1)
    return grey.contiguous(), torch.from_numpy(bunch.target.astype(np.int64))


def stroke(grey: Tensor, style: int) -> Tensor:
    """The grey intensity ``[N, 1, H, W]`` redrawn in stroke weight ``STYLES[style]``.

    thin keeps only the upper half of the intensity range, stretched back to ``[0, 1]``: the strokes' cores, about
    half as wide and with hard edges. bold is a 3x3 max-pool (grey dilation): every stroke two pixels wider.
    Pointwise ``thin <= regular <= bold``, so the ink mass is strictly ordered for every image with soft edges.
    """
    if style == 0:
        return ((grey - 0.5) / 0.5).clamp(0, 1)
    if style == 1:
        return grey
    if style == 2:
        return torch.nn.functional.max_pool2d(grey, kernel_size=3, stride=1, padding=1)
    raise ValueError(f"style index {style} out of range (0..{len(STYLES) - 1})")


def paint(intensity: Tensor, colour: Tensor) -> Tensor:
    """Grey intensities ``[N, 1, H, W]`` in ``[0, 1]`` inked in palette entries ``colour`` ``[N]``: RGB ``[N, 3, H, W]``
    in ``[-1, 1]``, black (-1) where the intensity is 0."""
    rgb = palette_rgb()[colour].view(-1, 3, 1, 1)
    return (intensity * rgb * 2.0 - 1.0).contiguous()


def intensity_of(images: Tensor) -> Tensor:
    """The grey intensity ``[N, 1, H, W]`` in ``[0, 1]`` of RGB images in ``[-1, 1]``: the brightest channel (exact on
    painted images, since every palette entry's brightest channel is 1)."""
    return ((images.float() + 1.0) / 2.0).clamp(0, 1).amax(dim=1, keepdim=True)


def ink_mass(images: Tensor) -> Tensor:
    """Mean grey intensity per image ``[N]``: a stroke-weight statistic (thin < regular < bold for one source image,
    though not across images; the style judge is a trained classifier)."""
    return intensity_of(images).mean(dim=(1, 2, 3))


def colour_cosines(images: Tensor) -> Tensor:
    """``[N, len(PALETTE)]``: the cosine between each RGB image's (in ``[-1, 1]``) mean colour, each pixel weighted by
    its brightness, and each palette direction."""
    rgb = ((images.float() + 1.0) / 2.0).clamp(0, 1)
    weight = rgb.amax(dim=1, keepdim=True)
    mean = (weight * rgb).sum(dim=(2, 3))
    palette = torch.nn.functional.normalize(palette_rgb().to(images.device), dim=1)
    return torch.nn.functional.normalize(mean, dim=1) @ palette.T


def colour_of(images: Tensor) -> Tensor:
    """The palette entry ``[N]`` (long) each RGB image in ``[-1, 1]`` is inked in: the entry whose direction is closest
    (cosine) to the image's mean colour, each pixel weighted by its brightness (:func:`colour_cosines`).

    On painted images every pixel is ``intensity x entry``, so the mean is parallel to the entry and the answer is
    exact. The brightness weights make the background's noise count little on generated images.
    """
    return colour_cosines(images).argmax(dim=1)


@dataclass(frozen=True)
class Text16Data:
    """Coloured, styled digits and their attributes, one row per image.

    ``images`` float32 ``[N, 3, 16, 16]`` in ``[-1, 1]``; ``digit``, ``colour``, ``style`` long ``[N]`` (indices into
    ``DIGITS``, ``PALETTE``, ``STYLES``); ``source`` long ``[N]``, the scikit-learn image it was drawn from;
    ``train`` / ``test`` bool ``[N]`` masks (a source image is in exactly one of them).
    """

    images: Tensor
    digit: Tensor
    colour: Tensor
    style: Tensor
    source: Tensor
    train: Tensor
    test: Tensor
    seed: int

    def __len__(self) -> int:
        return self.images.shape[0]

    def take(self, index: Tensor) -> Text16Data:
        """The rows at ``index`` (a bool mask such as ``data.train``, or indices), masks included."""
        return Text16Data(
            images=self.images[index],
            digit=self.digit[index],
            colour=self.colour[index],
            style=self.style[index],
            source=self.source[index],
            train=self.train[index],
            test=self.test[index],
            seed=self.seed,
        )

    def captions(self, rng: np.random.Generator, names: str = "all", grammar: Any = None) -> list[str]:
        """One random caption per image (see :meth:`~unlearnbench.testbeds.text16.grammar.Grammar.caption`)."""
        from unlearnbench.testbeds.text16.grammar import load_grammar

        grammar = grammar or load_grammar()
        rows = zip(self.digit.tolist(), self.colour.tolist(), self.style.tolist(), strict=True)
        return [grammar.caption(d, c, s, rng, names=names) for d, c, s in rows]

    def fingerprint(self) -> str:
        """sha256 over the tensors: changes whenever the images, their attributes or the split change."""
        h = hashlib.sha256()
        for t in (self.images, self.digit, self.colour, self.style, self.source, self.train, self.test):
            h.update(t.numpy().tobytes())
        return h.hexdigest()


def make_data(seed: int = 0, combos_per_image: int = 4, test_fraction: float = 0.2) -> Text16Data:
    """Every scikit-learn digit drawn in ``combos_per_image`` distinct (colour, style) combinations, split 80/20 by
    source image, stratified by digit (``load_digits16``'s split for the same seed). Deterministic in ``seed``.

    Within each (digit, split), the combinations are dealt from consecutive shuffled decks of all
    ``len(COLOURS) x len(STYLES)`` of them, ``combos_per_image`` per image, so every (digit, colour, style)
    combination occurs in both splits, equally often up to one deck.
    """
    from sklearn.model_selection import train_test_split

    combos = list(product(range(len(COLOURS)), range(len(STYLES))))
    if combos_per_image < 1 or len(combos) % combos_per_image:
        divisors = [k for k in range(1, len(combos) + 1) if len(combos) % k == 0]
        raise UserError(f"combos_per_image must divide {len(combos)} (one of {divisors}), got {combos_per_image}")
    grey, digits = grey_digits()
    index = np.arange(len(digits))
    train_idx, _ = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=digits.numpy())
    in_train = np.isin(index, train_idx)

    rng = np.random.default_rng(seed)
    assigned = np.empty((len(digits), combos_per_image), dtype=np.int64)  # a combination index per (source, slot)
    for d, split in product(range(len(DIGITS)), (True, False)):
        members = rng.permutation(index[(digits.numpy() == d) & (in_train == split)])
        if len(members) * combos_per_image < len(combos):
            raise UserError(f"digit {d} has too few images in a split to show every combination (seed {seed})")
        decks = -(-len(members) * combos_per_image // len(combos))  # ceiling division
        # Whole decks split into hands without straddling (combos_per_image divides the deck): no repeats per image.
        dealt = np.concatenate([rng.permutation(len(combos)) for _ in range(decks)])
        assigned[members] = dealt[: len(members) * combos_per_image].reshape(len(members), combos_per_image)

    source = torch.arange(len(digits)).repeat_interleave(combos_per_image)
    combo = torch.from_numpy(assigned.reshape(-1))
    colour = torch.tensor([c for c, _ in combos])[combo]
    style = torch.tensor([s for _, s in combos])[combo]
    intensity = torch.empty(len(source), 1, 16, 16)
    for s in range(len(STYLES)):
        rows = style == s
        intensity[rows] = stroke(grey, s)[source[rows]]
    train = torch.from_numpy(in_train)[source]
    return Text16Data(
        images=paint(intensity, colour),
        digit=digits[source],
        colour=colour,
        style=style,
        source=source,
        train=train,
        test=~train,
        seed=seed,
    )


# -- captions ------------------------------------------------------------------------------------------------
