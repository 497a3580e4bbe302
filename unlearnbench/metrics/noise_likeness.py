"""How much forget-class samples look like what the run's sampler draws from a model that predicts zero noise."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from unlearnbench.api import NONNEGATIVE, Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.metrics import mean_score
from unlearnbench.registry import register
from unlearnbench.stats import bootstrap

QUANTILES = 1024


def pixel_w1(images: Tensor, noise: Tensor) -> float:
    """1-D Wasserstein distance between the pixel values of ``images`` and those of ``noise``."""
    q = torch.linspace(0, 1, QUANTILES)
    return float((images.flatten().float().quantile(q) - noise.flatten().float().quantile(q)).abs().mean())


def lag1_autocorrelation(images: Tensor) -> Tensor:
    """Mean of the horizontal and vertical lag-1 pixel correlations, per image (0 for white noise)."""
    x = images.flatten(0, 1) if images.shape[1] == 1 else images.mean(1)
    x = x - x.mean(dim=(-1, -2), keepdim=True)
    var = x.pow(2).mean(dim=(-1, -2)).clamp_min(1e-8)
    horiz = (x[..., :, 1:] * x[..., :, :-1]).mean(dim=(-1, -2)) / var
    vert = (x[..., 1:, :] * x[..., :-1, :]).mean(dim=(-1, -2)) / var
    return (horiz + vert) / 2


@register("noise_likeness")
class NoiseLikeness(Metric):
    """Distance of forget samples from the sampler's "noise": pixel-value W1, and spatial autocorrelation.

    "Noise" is what the run's own sampler (its steps, η, clipping) draws from a model that predicts zero
    noise (:class:`~unlearnbench.evaluate.ZeroNoise`, in ``reference.noise``): with DDIM η = 0 that is
    about ``sign(x_T)``, pixels at ±1, not clipped N(0, 1).

    - ``noise_pixel_w1 = int_0^1 |F^-1_samples(q) - F^-1_noise(q)| dq``: the 1-D Wasserstein distance
      between the pixel values of the forget samples and those of the zero-noise model's samples; 0 when
      the pixel histograms agree. Its interval resamples the forget images.
    - ``noise_autocorr = mean_i (rho_h(x_i) + rho_v(x_i)) / 2``: lag-1 pixel correlation; 0 for white
      noise (and for its sign), about 0.86 for digits.
    SAFEMax's stated goal is noise (both near 0); lower is "more noise-like", not "better" for every method.
    """

    rows = (
        Row("noise_pixel_w1", "forget", "min", "noise W1", Tolerance(floor=0.1, relative=0.2), valid=NONNEGATIVE),
        Row(
            "noise_autocorr",
            "forget",
            "min",
            "noise autocorr",
            Tolerance(floor=0.1, relative=0.2),
            digits=2,
            summary=4,
            valid=(-1.0, 1.0),
        ),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        s = samples.forget
        if s is None or len(s) == 0:
            return []
        images = s.images.float()
        rows = [mean_score("noise_autocorr", "forget", lag1_autocorrelation(images))]
        noise = None if reference is None else reference.noise
        if noise is not None:
            w1 = pixel_w1(images, noise)
            interval, se = bootstrap(
                lambda idx: pixel_w1(images[torch.from_numpy(idx)], noise), np.arange(len(images)), n_boot=200
            )
            rows.insert(0, Score("noise_pixel_w1", "forget", w1, se, len(s), lo=interval.lo, hi=interval.hi))
        return rows
