"""A model unlearned elsewhere: attack and score someone else's checkpoint on the same protocol.

The most common use of UnlearnDiffAtk and HUB is to attack a checkpoint that another paper or tool
unlearned. ``unlearnbench run --method given --model-path DIR`` loads ``DIR`` (a diffusers folder:
``DIR/unet`` with its config and safetensors weights, or those files in ``DIR`` itself, as ``run --save-model``
writes ``DIR/unlearned``) in place of an unlearning, and the runner evaluates and attacks it as any method's
output. The folder's absolute path and its weights' sha256 are the run's arguments (``method_args``, in every
row): a folder whose weights changed is another run, and so is the same weights in another folder. Its
unlearning cost is unknown here: the cost rows are NaN, marked ``cost_recorded``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg
from unlearnbench.cost import Cost
from unlearnbench.errors import UserError
from unlearnbench.models import UNET_WEIGHTS, check_finite, check_safetensors, sha256_file, unet_class, verify_sha256
from unlearnbench.registry import register


@dataclass(frozen=True)
class GivenArgs:
    path: str = arg("", "the unlearned model's folder (DIR/unet or DIR; 'run --save-model' writes DIR/unlearned)")
    sha256: str = arg("", "its weights' sha256 (filled in from the folder; one given must match it)")


def weights_folder(path: str) -> Path:
    """The folder holding the UNet's config and weights: ``DIR/unet`` when there is one, else ``DIR``."""
    folder = Path(path)
    if not path or not folder.is_dir():
        raise UserError(f"--model-path: {path!r} is not a folder (give the unlearned model's diffusers folder)")
    unet = folder / "unet"
    return unet if (unet / UNET_WEIGHTS).is_file() else folder


@register("given")
class Given(UnlearningMethod):
    """A model unlearned elsewhere (--model-path DIR): attacked and scored as any method's output."""

    Args = GivenArgs
    uses_sampler = False
    uses_seed = False
    paper = "a checkpoint unlearned elsewhere (its sha256 in every row)"

    def resolved(self) -> GivenArgs:
        """The folder as an absolute path and its weights' sha256 (a given one must match)."""
        folder = weights_folder(self.args.path)
        weights = folder / UNET_WEIGHTS
        check_safetensors(weights)
        digest = sha256_file(weights)
        if self.args.sha256 and self.args.sha256 != digest:
            verify_sha256(weights, self.args.sha256)  # one line naming both
        return replace(self.args, path=str(folder.resolve()), sha256=digest)

    def unlearn(self, model: nn.Module, task: Task, *, generator: torch.Generator) -> nn.Module:
        a = self.resolved()
        folder = Path(a.path)
        cls = unet_class(folder)
        if cls is not type(model):
            raise UserError(f"--model-path {folder}: a {cls.__name__}, the testbed's model is a {type(model).__name__}")
        given = cls.from_pretrained(str(folder), use_safetensors=True, low_cpu_mem_usage=False)
        keys = {k for k in set(given.config) | set(model.config) if not k.startswith("_")}
        differ = sorted(k for k in keys if given.config.get(k) != model.config.get(k))
        if differ:
            raise UserError(
                f"--model-path {folder}: its config differs from the testbed's model in {', '.join(differ)}"
            )
        check_finite(given, folder / UNET_WEIGHTS)
        unknown = Cost(wall_s=math.nan, cpu_s=math.nan, peak_mem_mb=math.nan, steps=math.nan, prior_wall_s=math.nan)  # type: ignore[arg-type]
        task.meter.charge_recorded(unknown)
        return given.to(task.device)
