"""Cost of the unlearning or the attack: seconds, memory, gradient steps, priors."""

from __future__ import annotations

from unlearnbench.api import NONNEGATIVE, Metric, Row, Score, Tolerance
from unlearnbench.cost import Cost
from unlearnbench.registry import register

# The attack's cost is the same set, prefixed "attack_" (never a quality-table column; some are robustness-table
# columns). name: (label, digits, summary position, leaderboard position, in the README's copy, robustness position)
_FIELDS = {
    "cost_wall_s": ("time s", 1, 8, 7, True, 3),
    "cost_cpu_s": ("CPU s", 1, 0, 0, False, 0),
    "cost_peak_mem_mb": ("peak MiB", 0, 9, 8, True, 0),
    "cost_steps": ("steps", 0, 0, 0, False, 4),
    "cost_prior_wall_s": ("prior s", 1, 0, 9, False, 0),
    "cost_prior_steps": ("prior steps", 0, 0, 0, False, 0),
    "cost_prior_cached": ("prior cached", 0, 0, 0, False, 0),
    "cost_recorded": ("recorded cost", 0, 0, 0, False, 0),
}
# Machine-dependent: compared only with 'check --include-cost', and then loosely.
_TOLERANCE = Tolerance(floor=1.0, relative=0.5)


def _rows(prefix: str, label_prefix: str) -> tuple[Row, ...]:
    return tuple(
        Row(
            prefix + name,
            "all",
            "min",
            label_prefix + label,
            _TOLERANCE,
            digits,
            0 if prefix else summary,  # the summary shows the attack's cost in its own column
            machine_dependent=True,
            leaderboard=0 if prefix else board,
            headline=headline and not prefix,
            robustness=robustness if prefix else 0,  # the attack's own cost, beside its success
            # an attack's time and steps are the attacker's budget (its steps equal by design), not how well the
            # unlearning held: no best
            ranked=not prefix,
            best_among_forgetting=not prefix,  # an unlearning's cost counts where it forgot
            valid=NONNEGATIVE,
        )
        for name, (label, digits, summary, board, headline, robustness) in _FIELDS.items()
    )


@register("cost")
class CostMetric(Metric):
    """Wall and CPU seconds, peak memory (MiB above the start), gradient steps, and the priors' share.

    ``cost_wall_s`` includes the priors; ``cost_prior_wall_s`` is the part spent on them (Selective
    Amnesia's Fisher and replay, SalUn's saliency mask). ``cost_recorded`` = 1 marks a result that was
    loaded (``retrain``'s shipped reference) and carries the cost recorded when it was made. Memory is
    peak RSS growth on CPU and ``max_memory_allocated`` growth on CUDA (see :mod:`unlearnbench.cost`). The
    attack's cost is written as ``attack_cost_*``.
    """

    rows = _rows("", "") + _rows("attack_", "attack ")

    def on_cost(self, cost: Cost, *, attack: bool) -> list[Score]:
        prefix = "attack_" if attack else ""
        values = {
            "cost_wall_s": cost.wall_s,
            "cost_cpu_s": cost.cpu_s,
            "cost_peak_mem_mb": cost.peak_mem_mb,
            "cost_steps": float(cost.steps),
            "cost_prior_wall_s": cost.prior_wall_s,
            "cost_prior_steps": float(cost.prior_steps),
            "cost_prior_cached": float(cost.prior_cached),
            "cost_recorded": float(cost.recorded),
        }
        return [Score(prefix + name, "all", value) for name, value in values.items()]
