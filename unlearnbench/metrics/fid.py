"""FID, KID, precision and recall through torch-fidelity, in the evaluator's feature space."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unlearnbench.api import Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.registry import register

EXTRACTOR = "unlearnbench-evaluator"
FEATURE = "penultimate"


def _register_extractor() -> None:
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if EXTRACTOR in FEATURE_EXTRACTORS_REGISTRY:
        return

    class EvaluatorFeatures(FeatureExtractorBase):
        """torch-fidelity feature extractor: the shipped evaluator's penultimate layer on uint8 images."""

        def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
            super().__init__(name, features_list)
            from unlearnbench.models import load_classifier

            path = kwargs.get("feature_extractor_weights_path")
            if path is None:
                raise ValueError("the evaluator feature extractor needs feature_extractor_weights_path")
            self.net = load_classifier(path)

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return (FEATURE,)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return FEATURE

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        @staticmethod
        def get_dummy_input_for_compile() -> Tensor:
            raise NotImplementedError

        def forward(self, x: Tensor) -> tuple[Tensor]:
            x = x.float() / 127.5 - 1.0  # uint8 back to [-1, 1]
            return (self.net.features(x),)

    register_feature_extractor(EXTRACTOR, EvaluatorFeatures)


class _Images(torch.utils.data.Dataset):
    """Images in [-1, 1] quantised to uint8, as torch-fidelity expects (and as a saved PNG would be)."""

    def __init__(self, images: Tensor) -> None:
        self.images = ((images.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


def fidelity(generated: Tensor, real: Tensor, evaluator_path: Path | str, *, prc: bool = True) -> dict[str, float]:
    """torch-fidelity's FID, KID (mean, std over subsets), precision and recall of ``generated`` vs ``real``."""
    import torch_fidelity

    _register_extractor()
    n = min(len(generated), len(real))
    out = torch_fidelity.calculate_metrics(
        input1=_Images(generated),
        input2=_Images(real),
        cuda=torch.cuda.is_available(),
        fid=True,
        kid=True,
        prc=prc and n >= 4,
        feature_extractor=EXTRACTOR,
        feature_extractor_weights_path=str(evaluator_path),
        kid_subset_size=n,
        kid_subsets=100,
        save_cpu_ram=True,  # no DataLoader worker processes
        cache=False,
        verbose=False,
    )
    return {k: float(v) for k, v in out.items()}


@register("fid")
class FID(Metric):
    """FID and KID (torch-fidelity) in the evaluator's penultimate-feature space; precision and recall too.

    ``FID = ||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2))`` over the features of generated (g)
    and held-out real (r) images; KID is the unbiased squared MMD with the cubic polynomial kernel,
    averaged over 100 subsets. On ``retain`` (samples of the retained classes vs. real test images of
    those classes) lower is better; on ``forget`` (forget samples vs. real forget-class images) a *high*
    value means the class is gone. Precision/recall: Kynkaanniemi et al. 2019, k = 3.
    """

    _fid, _kid, _pr = Tolerance(floor=2.0, relative=0.15), Tolerance(floor=0.005, relative=0.15), Tolerance(floor=0.1)
    rows = (
        Row("fid", "retain", "min", "FID", _fid, digits=2, summary=6, leaderboard=5),
        Row("kid", "retain", "min", "KID", _kid, digits=4, summary=7, leaderboard=6),
        Row("precision", "retain", "max", "precision", _pr),
        Row("recall", "retain", "max", "recall", _pr),
        Row("fid", "forget", "max", "FID forget", _fid, digits=2),
        Row("kid", "forget", "max", "KID forget", _kid, digits=4),
        Row("precision", "forget", "min", "precision forget", _pr),
        Row("recall", "forget", "min", "recall forget", _pr),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        rows: list[Score] = []
        for split, s, real in (
            ("retain", samples.retain, reference.retain_real),
            ("forget", samples.forget, reference.forget_real),
        ):
            if s is None or len(s) < 2 or len(real) < 2:
                continue
            m = fidelity(s.images, real, reference.evaluator_path)
            n = len(s)
            rows += [
                Score("fid", split, m["frechet_inception_distance"], math.nan, n),
                Score("kid", split, m["kernel_inception_distance_mean"], m["kernel_inception_distance_std"], n),
            ]
            if "precision" in m:
                rows += [
                    Score("precision", split, m["precision"], math.nan, n),
                    Score("recall", split, m["recall"], math.nan, n),
                ]
        return rows
