"""Cost of the unlearning or the attack: seconds, memory, gradient steps, priors."""

from __future__ import annotations

from typing import Any

from unlearnbench.api import Metric, Score
from unlearnbench.cost import Cost
from unlearnbench.registry import register


@register("cost")
class CostMetric(Metric):
    """Wall and CPU seconds, peak memory (MiB above the start), gradient steps, and the priors' share.

    ``cost_wall_s`` includes the priors; ``cost_prior_wall_s`` is the part spent on them (Selective
    Amnesia's Fisher and replay, SalUn's saliency mask). Memory is peak RSS growth on CPU and
    ``max_memory_allocated`` growth on CUDA (see :mod:`unlearnbench.cost`).
    """

    input = "cost"

    def compute(self, samples: Cost, reference: Any = None) -> list[Score]:
        c = samples
        return [
            Score("cost_wall_s", "all", c.wall_s, "min"),
            Score("cost_cpu_s", "all", c.cpu_s, "min"),
            Score("cost_peak_mem_mb", "all", c.peak_mem_mb, "min"),
            Score("cost_steps", "all", float(c.steps), "min"),
            Score("cost_prior_wall_s", "all", c.prior_wall_s, "min"),
            Score("cost_prior_steps", "all", float(c.prior_steps), "min"),
            Score("cost_prior_cached", "all", float(c.prior_cached), "min"),
        ]
