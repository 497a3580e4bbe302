"""The one training loop: every method, attack and recipe optimises through :func:`optimize`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import torch
from torch import Tensor, nn

from unlearnbench.conditioning import Conditioning
from unlearnbench.cost import CostMeter
from unlearnbench.diffusion import EMA, forward_precision
from unlearnbench.errors import Diverged
from unlearnbench.progress import bar

LossFn = Callable[[int], Tensor]
# What travels with a batch of images: its conditioning, or a classifier's targets.
Rows = TypeVar("Rows", Conditioning, Tensor)


# Called after every step of every optimize() inside observing(): step curves (scripts/safemax_curve.py)
# watch a method train without the method knowing.
_observer: ContextVar[Callable[[int], None] | None] = ContextVar("unlearnbench_step_observer", default=None)


# The arithmetic of every optimize() step's loss (forward, and so its backward) inside training_precision():
# "float32", or "bfloat16" autocast. The runner sets it around the unlearning only (a run's
# ``unlearn_precision``); attacks and the base model's recipes train in float32.
_precision: ContextVar[str] = ContextVar("unlearnbench_training_precision", default="float32")


@contextmanager
def training_precision(precision: str) -> Iterator[None]:
    """Within this block, ``optimize`` computes each loss under :func:`forward_precision` (weights, gradients and
    optimizer state stay float32: autocast changes the arithmetic of the matrix products and convolutions only)."""
    forward_precision(precision, torch.device("cpu"))  # an unknown name fails here, before any step
    token = _precision.set(precision)
    try:
        yield
    finally:
        _precision.reset(token)


@contextmanager
def observing(callback: Callable[[int], None]) -> Iterator[None]:
    """Within this block, ``optimize`` calls ``callback(step)`` after each step (1, 2, ...), after its own callback."""
    token = _observer.set(callback)
    try:
        yield
    finally:
        _observer.reset(token)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up, then constant or cosine decay to zero."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def optimize(
    params: Iterable[nn.Parameter] | Iterable[Tensor],
    loss_fn: LossFn,
    *,
    steps: int,
    lr: float,
    desc: str,
    meter: CostMeter | None = None,
    optimizer: str | torch.optim.Optimizer = "adam",
    weight_decay: float = 0.0,
    warmup: int = 0,
    lr_schedule: str = "constant",
    grad_clip: float | None = None,
    grad_masks: dict[Tensor, Tensor] | None = None,
    ema: tuple[EMA, nn.Module] | None = None,
    callback: Callable[[int], None] | None = None,
    start: int = 0,
) -> list[float]:
    """Minimise ``loss_fn(step)`` for ``steps`` steps; return the loss history.

    ``optimizer`` is "adam" (AdamW; plain Adam at ``weight_decay=0``), "sgd", or an optimizer to reuse.
    ``grad_masks`` maps a parameter to a 0/1 mask multiplied into its gradient (SalUn's saliency).
    ``callback(step)`` runs after steps 1..steps (for recovery curves). A non-finite loss raises
    :class:`Diverged`, which the runner records as a failed run. ``start`` resumes a run at that step
    (pass the restored optimizer; the learning-rate schedule continues from ``start``).
    """
    params = [p for p in params if p.requires_grad]
    if isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer  # shared across calls (EraseDiff keeps one Adam state for both loops)
    elif optimizer == "adam":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    scheduled = warmup > 0 or lr_schedule != "constant"
    sched = (
        torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s + start, steps, warmup, lr_schedule))
        if scheduled
        else None
    )
    history: list[float] = []
    device = params[0].device if params else torch.device("cpu")
    precision = _precision.get()
    for step in bar(range(start, steps), desc=desc):
        with forward_precision(precision, device):
            loss = loss_fn(step)
        if not torch.isfinite(loss):
            raise Diverged(f"{desc}: loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if grad_masks:  # after clipping, as SalUn's code does
            for p, mask in grad_masks.items():
                if p.grad is not None:
                    p.grad.mul_(mask)
        opt.step()
        if sched is not None:
            sched.step()
        if ema is not None:
            ema[0].update(ema[1])
        if meter is not None:
            meter.step()
        history.append(float(loss.detach()))
        if callback is not None:
            callback(step + 1)
        observer = _observer.get()
        if observer is not None:
            observer(step + 1)
    return history


def sample_batch(images: Tensor, cond: Rows, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Rows]:
    """A batch of images and their conditioning (or classifier targets), drawn uniformly with replacement
    (works for sets smaller than the batch)."""
    idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator).to(images.device)
    return images[idx], cond[idx]
