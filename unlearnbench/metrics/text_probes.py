"""What a text testbed's run probes read around the forgotten concepts: held-out names, neighbours, compositions."""

from __future__ import annotations

from unlearnbench.api import RATE, Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.metrics import rate_score
from unlearnbench.registry import register


@register("text_probes")
class TextProbes(Metric):
    """Forgetting by held-out names, spill-over onto declared neighbours, and retention inside the erased prompt.

    The testbed's run probes (``Testbed.run_probes``; text16's) are sampled at every full phase with the run's
    sampler and read by the evaluator:

    - ``unlearning_accuracy_heldout = 1 - 1/n sum_i 1[argmax_k z_k(x_i) = c_i]`` over samples prompted with the
      forgotten concept's *held-out* names and phrasings (which no method is given): does forgetting reach the
      names a user did not erase?
    - ``neighbour_accuracy``: accuracy on the concept's declared neighbours (a visually close digit, a nearby hue),
      prompted as every retained concept is; compared with the original model's in the leaderboard, the drop is
      the spill-over;
    - ``in_prompt_retention`` (Six-CD's idea): in "a crimson seven" with "seven" erased, the share of samples whose
      *other* concept (the colour) is still read right.

    No rows on a testbed without run probes (digits16).
    """

    rows = (
        Row(
            "unlearning_accuracy_heldout",
            "forget",
            "max",
            "UA held-out names",
            Tolerance(floor=0.05),
            valid=RATE,
            leaderboard=2.5,
            headline=True,
        ),
        Row("neighbour_accuracy", "retain", "max", "neighbour acc", Tolerance(floor=0.05), valid=RATE, leaderboard=4.3),
        Row(
            "in_prompt_retention",
            "retain",
            "max",
            "in-prompt retention",
            Tolerance(floor=0.05),
            valid=RATE,
            leaderboard=4.4,
        ),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        read = samples.probes
        out = []
        if "heldout_names" in read and len(read["heldout_names"]):
            out.append(rate_score("unlearning_accuracy_heldout", "forget", ~read["heldout_names"]))
        for probe, metric in (("neighbours", "neighbour_accuracy"), ("in_prompt", "in_prompt_retention")):
            if probe in read and len(read[probe]):
                out.append(rate_score(metric, "retain", read[probe]))
        return out
