"""The defaults that more than one module reads, each in one place (core layer: it imports nothing).

A list that a metric, method or attack can declare is not here: the report reads those from the
declarations (:class:`unlearnbench.api.Row`, ``UnlearningMethod.reference``). What is here is a choice among
them that several commands share.
"""

from __future__ import annotations

# The primary forgetting criterion (tuning, recovery, the run summary, the leaderboard's ASR grid): the
# noise-aware 11-way judge, for which a sample of noise is "none", not the forget digit by chance. The 10-way
# rows stay beside it as the papers' columns.
PRIMARY_UA = "unlearning_accuracy_11way"
PRIMARY_ASR = "asr_11way"
# The retained-class accuracy that the tuning rule, the trade-off figures and the two-judge table read.
RETAIN_ACCURACY = "retain_accuracy_10way"

# The testbed a run, a config or a tuned setting is on when it does not say.
DEFAULT_TESTBED = "digits16"

# The method the leaderboard's cost ratios divide by (``leaderboard --cost-reference``).
COST_REFERENCE = "safemax"
