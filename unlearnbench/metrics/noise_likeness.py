"""How much forget-class samples look like the sampler's output for pure Gaussian noise."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from unlearnbench.api import Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.metrics import mean_stderr
from unlearnbench.registry import register


@lru_cache(maxsize=1)
def gaussian_reference_quantiles(n: int = 4096, seed: int = 0) -> Tensor:
    """Quantiles of ``clip(N(0, 1), -1, 1)``: what a sample is when the model only returns noise."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n * 64, generator=g).clamp(-1, 1).quantile(torch.linspace(0, 1, n)).contiguous()


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
    """Distance of forget samples from noise: pixel-value W1 to clipped N(0,1), and spatial autocorrelation.

    - ``noise_pixel_w1 = int_0^1 |F^-1_samples(q) - F^-1_noise(q)| dq``: the 1-D Wasserstein distance
      between the pixel values of the forget samples and those of ``clip(N(0,1), -1, 1)``. 0 when the
      pixel histogram is that of the sampler's output for pure noise.
    - ``noise_autocorr = mean_i (rho_h(x_i) + rho_v(x_i)) / 2``: lag-1 pixel correlation; 0 for white
      noise, about 0.8 for digits.
    SAFEMax's stated goal is noise (both near 0); lower is "more noise-like", not "better" for every method.
    """

    rows = (
        Row("noise_pixel_w1", "forget", "min", "noise W1", Tolerance(floor=0.1, relative=0.2)),
        Row(
            "noise_autocorr", "forget", "min", "noise autocorr", Tolerance(floor=0.1, relative=0.2), digits=2, summary=4
        ),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        s = samples.forget
        if s is None or len(s) == 0:
            return []
        ref = gaussian_reference_quantiles()
        q = torch.linspace(0, 1, ref.numel())
        w1 = (s.images.flatten().float().quantile(q) - ref).abs().mean()
        ac_mean, ac_se = mean_stderr(lag1_autocorrelation(s.images.float()))
        return [
            Score("noise_pixel_w1", "forget", float(w1), float("nan"), len(s)),
            Score("noise_autocorr", "forget", ac_mean, ac_se, len(s)),
        ]
