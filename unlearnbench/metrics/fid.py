"""FID, KID, precision and recall through torch-fidelity, in the evaluator's feature space."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unlearnbench.api import NONNEGATIVE, RATE, Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.registry import register
from unlearnbench.stats import Interval, subsample
from unlearnbench.timing import part

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


def features(images: Tensor, evaluator_path: Path | str) -> Tensor:
    """The evaluator's penultimate features of ``images``, through torch-fidelity's registered extractor."""
    from torch_fidelity.utils import get_featuresdict_from_dataset

    cuda = torch.cuda.is_available()
    extractor = _extractor(str(evaluator_path), Path(evaluator_path).stat().st_mtime_ns, cuda)
    return get_featuresdict_from_dataset(_Images(images), extractor, 1024, cuda, True, False)[FEATURE].double()


@lru_cache(maxsize=4)
def _extractor(evaluator_path: str, modified_ns: int, cuda: bool) -> Any:
    """One extractor per evaluator file (and version of it)."""
    from torch_fidelity.utils import create_feature_extractor

    _register_extractor()
    return create_feature_extractor(
        EXTRACTOR, [FEATURE], cuda=cuda, feature_extractor_weights_path=evaluator_path, verbose=False
    )


def kid_subset_size(n_generated: int, n_real: int) -> int:
    """Half the smaller set: every subset then leaves out part of *both* sets, so the spread over subsets
    sees both sides' sampling (a subset as large as the generated set repeats it whole in every subset)."""
    return max(2, min(n_generated, n_real) // 2)


def fid_of(f_gen: Tensor, f_real: Tensor) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats = [fid_features_to_statistics(f) for f in (f_gen, f_real)]
    return float(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])


class FrechetToReal:
    """FID of many generated sets against one real set (the interval's replicates). The real statistics and
    the square root of their covariance are computed once, and ``Tr((S_g S_r)^(1/2))`` is read from the
    symmetric ``S_r^(1/2) S_g S_r^(1/2)`` (same eigenvalues): one ``eigvalsh`` per replicate instead of
    recomputing the real covariance and a general ``eigvals`` (:func:`fid_of`, torch-fidelity's formula).
    The same value to rounding (tests/test_metrics.py), about 12x faster per replicate at 128 features.
    """

    def __init__(self, f_real: Tensor) -> None:
        from torch_fidelity.metric_fid import fid_features_to_statistics

        real = fid_features_to_statistics(f_real)
        self.mu, self.trace = real["mu"], float(np.trace(real["sigma"]))
        w, v = np.linalg.eigh(real["sigma"])
        self.root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    def __call__(self, f_gen: Tensor) -> float:
        from torch_fidelity.metric_fid import fid_features_to_statistics

        gen = fid_features_to_statistics(f_gen)
        diff = gen["mu"] - self.mu
        # torch-fidelity keeps the real part of complex roots: a (rounding-)negative eigenvalue adds 0
        roots = np.sqrt(np.clip(np.linalg.eigvalsh(self.root @ gen["sigma"] @ self.root), 0, None))
        return float(diff @ diff + np.trace(gen["sigma"]) + self.trace - 2 * roots.sum())


def kid_of(f_gen: Tensor, f_real: Tensor, subsets: int = 100) -> tuple[float, float]:
    """torch-fidelity's KID (mean and std over ``subsets`` subsets of :func:`kid_subset_size`)."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = kid_subset_size(len(f_gen), len(f_real))
    out = kid_features_to_metric(f_gen, f_real, kid_subsets=subsets, kid_subset_size=size, verbose=False)
    return float(out["kernel_inception_distance_mean"]), float(out["kernel_inception_distance_std"])


def fidelity_of_features(f_gen: Tensor, f_real: Tensor, *, prc: bool = True) -> dict[str, float]:
    """FID, KID (mean, std over subsets), precision and recall (torch-fidelity) from features."""
    kid, kid_std = kid_of(f_gen, f_real)
    out = {
        "frechet_inception_distance": fid_of(f_gen, f_real),
        "kernel_inception_distance_mean": kid,
        "kernel_inception_distance_std": kid_std,
    }
    if prc and min(len(f_gen), len(f_real)) >= 4:
        from torch_fidelity.metric_prc import prc_features_to_metric

        out.update({k: float(v) for k, v in prc_features_to_metric(f_gen, f_real, verbose=False).items()})
    return out


def fidelity(generated: Tensor, real: Tensor, evaluator_path: Path | str, *, prc: bool = True) -> dict[str, float]:
    """torch-fidelity's FID, KID (mean, std over subsets), precision and recall of ``generated`` vs ``real``."""
    return fidelity_of_features(features(generated, evaluator_path), features(real, evaluator_path), prc=prc)


# Half-sample replicates for FID's and KID's intervals (each one FID, or one KID of 5 subsets).
N_BOOT = 100
SUBSET_FRACTION = 0.5


def _or_nan(compute: Any) -> float:
    """A replicate on too few points (a singular covariance) counts as missing, not as an error."""
    try:
        return float(compute())
    except (np.linalg.LinAlgError, ValueError):
        return math.nan


def intervals(
    f_gen: Tensor, f_real: Tensor, labels: Tensor | None = None, kid: float | None = None
) -> dict[str, tuple[Interval, float]]:
    """95% intervals (and standard errors) of FID and KID over the generated samples: half-samples within
    each class (``labels``; the samples are drawn a fixed number per class), without replacement
    (:func:`unlearnbench.stats.subsample`). The real set stays whole: every method is compared with the
    same one. A with-replacement bootstrap, or subsets that ignore the classes, change the class mix or
    repeat points, and inflate FID's spread several-fold (see the README's *Statistics*). A replicate's KID
    averages 5 subsets; the KID interval is centred on ``kid``, the reported 100-subset value (before
    2026-11-29 it was centred on a 5-subset KID of the whole set, which could leave the reported value
    outside its own interval)."""
    strata = [None if labels is None else labels.cpu().numpy()]
    to_real = FrechetToReal(f_real)

    def fid(i: np.ndarray) -> float:
        return _or_nan(lambda: to_real(f_gen[torch.from_numpy(i)]))

    def kid_rep(i: np.ndarray) -> float:
        return _or_nan(lambda: kid_of(f_gen[torch.from_numpy(i)], f_real, subsets=5)[0])

    idx = np.arange(len(f_gen))
    kid_value = kid_of(f_gen, f_real)[0] if kid is None else kid
    return {
        "fid": subsample(fid, idx, strata=strata, fraction=SUBSET_FRACTION, n_rep=N_BOOT),
        "kid": subsample(kid_rep, idx, strata=strata, fraction=SUBSET_FRACTION, n_rep=N_BOOT, estimate=kid_value),
    }


@register("fid")
class FID(Metric):
    """FID and KID (torch-fidelity) in the evaluator's penultimate-feature space; precision and recall too.

    ``FID = ||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2))`` over the features of generated (g)
    and real (r) images; KID is the unbiased squared MMD with the cubic polynomial kernel, averaged over 100
    subsets of half the smaller set (:func:`kid_subset_size`). The real side is every real image of the
    classes (train and test; the runner's ``Reference``). On ``retain`` (samples of the retained classes)
    lower is better; on ``forget`` (forget samples vs. real forget-class images) a *high* value means the
    class is gone. FID and KID carry a 95% interval over the generated samples (:func:`intervals`: 100
    half-samples within each class, centred on the estimate) and its standard error. Precision/recall:
    Kynkaanniemi et al. 2019, k = 3, without an interval.
    """

    _fid, _kid, _pr = Tolerance(floor=2.0, relative=0.15), Tolerance(floor=0.005, relative=0.15), Tolerance(floor=0.1)
    rows = (
        Row("fid", "retain", "min", "FID", _fid, digits=2, valid=NONNEGATIVE, summary=6, leaderboard=5, headline=True),
        Row("kid", "retain", "min", "KID", _kid, digits=4, summary=7, leaderboard=6),
        Row("precision", "retain", "max", "precision", _pr, valid=RATE),
        Row("recall", "retain", "max", "recall", _pr, valid=RATE),
        Row("fid", "forget", "max", "FID forget", _fid, digits=2, valid=NONNEGATIVE),
        Row("kid", "forget", "max", "KID forget", _kid, digits=4),
        Row("precision", "forget", "min", "precision forget", _pr, valid=RATE),
        Row("recall", "forget", "min", "recall forget", _pr, valid=RATE),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        rows: list[Score] = []
        for split, s, real in (
            ("retain", samples.retain, reference.retain_real),
            ("forget", samples.forget, reference.forget_real),
        ):
            if s is None or len(s) < 2 or len(real) < 2:
                continue
            with part("fid_kid"):
                f_gen = features(s.images, reference.evaluator_path)
                if ("fid_real_features", split) not in reference.derived:  # the same real set at every phase
                    reference.derived["fid_real_features", split] = features(real, reference.evaluator_path)
                f_real = reference.derived["fid_real_features", split]
                m = fidelity_of_features(f_gen, f_real)
                ci = intervals(f_gen, f_real, s.labels, kid=m["kernel_inception_distance_mean"])
            n = len(s)
            rows += [
                Score(name, split, m[key], ci[name][1], n, lo=ci[name][0].lo, hi=ci[name][0].hi)
                for name, key in (("fid", "frechet_inception_distance"), ("kid", "kernel_inception_distance_mean"))
            ]
            if "precision" in m:
                rows += [
                    Score("precision", split, m["precision"], math.nan, n),
                    Score("recall", split, m["recall"], math.nan, n),
                ]
        return rows
