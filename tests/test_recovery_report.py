"""Recovery as survival in the report: runs read from the tidy rows into times and censoring, the table, the
paired comparison and the figures (issue 35), on a synthetic store whose recovery times are known."""

from __future__ import annotations

import json

import pytest

from unlearnbench.report.figures import survival_figure, uncertainty_figure
from unlearnbench.report.recovery import answers, recovery_runs, survival_table, uncertainty_against_recovery
from unlearnbench.results import to_frame

STEPS = (0, 5, 10, 25, 50, 100, 200, 300)
ARGS = json.dumps({"k": 10, "steps": 300, "curve_steps": [5, 10, 25, 50, 100, 200], "recover_fraction": 0.8})


def run_rows(
    run_id, label, method, concept, seed, recover_at, *, pre=0.0, entropy=1.0, testbed="digits16", measured=None
):
    """The rows one relearning run writes: original ASR 1.0, a curve back at ``recover_at`` (None: never) that
    starts at ``pre``, and with ``measured`` the unlearned model's ASR on the run's forget samples."""
    common = dict(run_id=run_id, label=label, method=method, attack="relearn", attack_args=ARGS, status="ok")
    common.update(forget_concept=concept, seed=seed, guidance=1.0, eta=0.0, sample_steps=50, testbed=testbed)
    rows = [dict(common, phase="original", split="forget", metric="asr_11way", value=1.0)]
    rows.append(dict(common, phase="attacked", split="forget", metric="recover_threshold", value=0.8))
    rows.append(dict(common, phase="unlearned", split="forget", metric="entropy", value=entropy))
    if measured is not None:
        rows.append(dict(common, phase="unlearned", split="forget", metric="asr_11way", value=measured))
    for step in STEPS:
        back = recover_at is not None and step >= recover_at
        value = pre if step == 0 else (0.9 if back else 0.1)
        rows.append(dict(common, phase="attacked", split="forget", metric="asr_11way", value=value, attack_step=step))
    return rows


@pytest.fixture
def frame():
    rows = []
    for concept in "0123":
        for seed in (0, 1):
            late = None if (concept, seed) == ("3", 1) else 200  # one SAFEMax run censored at 300
            rows += run_rows(f"s{concept}{seed}", "tuned, retain term", "safemax", concept, seed, late, entropy=2.0)
            pre = 0.95 if (concept, seed) == ("0", 0) else 0.0  # one SalUn run never forgot
            rows += run_rows(f"r{concept}{seed}", "tuned", "salun", concept, seed, 50, pre=pre, entropy=0.1)
    return to_frame(rows)


def test_runs_become_times_with_censoring_and_never_forgot_runs_drop_out(frame):
    runs = recovery_runs(frame).set_index("run_id")
    assert "r00" not in runs.index and len(runs) == 15  # never forgot: neither an event nor at risk
    assert runs.loc["s31", "time"] == 300 and not runs.loc["s31", "event"]  # censored at the budget
    assert runs.loc["s00", "time"] == 200 and runs.loc["s00", "event"]
    assert runs.loc["r10", "time"] == 50 and runs.loc["r10", "entropy"] == 0.1


def test_the_table_gives_medians_and_the_paired_difference_against_safemax(frame):
    table = survival_table(recovery_runs(frame), compare_to=("tuned, retain term", "safemax")).set_index("method")
    assert table.loc["safemax", "forgot"] == 8 and table.loc["safemax", "recovered"] == 7
    assert table.loc["safemax", "censored"] == 1 and table.loc["salun", "forgot"] == 7
    assert table.loc["safemax", "median"].startswith("200") and table.loc["salun", "median"].startswith("50")
    # SalUn recovers 150 steps sooner on every shared concept; the censored SAFEMax run adds to the gap
    diff = table.loc["salun", "vs"]
    assert diff.startswith("-1") and not diff.endswith("=")
    # the log-rank test agrees (unpaired): SalUn's curve falls well before SAFEMax's
    assert float(table.loc["salun", "log-rank p"]) < 0.01 and table.loc["safemax", "log-rank p"] == "–"


def test_uncertainty_against_recovery_and_the_figures(frame):
    runs = recovery_runs(frame)
    rho = uncertainty_against_recovery(runs).set_index("runs")
    assert set(rho["attack"]) == {"relearn (curve_steps=[5, 10, 25, 50, 100, 200], steps=300)"}
    assert rho.loc["all methods", "rho"] > 0.8  # the higher-entropy method takes longer here, by construction
    assert survival_figure(runs) is not None and uncertainty_figure(runs) is not None


def test_a_store_without_curves_gives_no_runs():
    empty = to_frame([dict(run_id="x", phase="original", split="forget", metric="asr_11way", value=1.0, status="ok")])
    assert recovery_runs(empty).empty


def test_two_methods_that_forgot_on_different_concepts_are_not_paired_and_the_table_still_builds():
    rows = []
    for concept, seed in (("0", 0), ("1", 0)):
        rows += run_rows(f"s{concept}{seed}", "tuned, retain term", "safemax", concept, seed, 200)
    rows += run_rows("r20", "tuned", "salun", "2", 0, 50)  # SalUn only has a run on a concept SAFEMax lacks
    table = survival_table(recovery_runs(to_frame(rows)), compare_to=("tuned, retain term", "safemax"))
    assert table.set_index("method").loc["salun", "vs"] == "no shared class"


def test_the_seed_papers_questions_are_answered_in_sentences_with_their_intervals(frame):
    """SalUn recovers at 50 where SAFEMax (retain term) needs 200 or more: SAFEMax holds longer, by a paired interval
    below 0; SalUn anchors and SAFEMax sends to noise, so noise holds longer. A random-label run recovering exactly
    as SAFEMax does on every concept is a tie: "cannot tell"."""
    extra = []
    for concept in "0123":
        for seed in (0, 1):
            late = None if (concept, seed) == ("3", 1) else 200
            extra += run_rows(f"l{concept}{seed}", "tuned", "random_label", concept, seed, late)
    runs = recovery_runs(to_frame([*frame.to_dict("records"), *extra]))
    first, second = answers(runs)
    assert first.startswith("**Is forgetting by maximal uncertainty harder to undo?**")
    assert "SAFEMax with its retain term recovers in a median of 200 [" in first and "8 runs" in first
    assert "salun (tuned) -1" in first and "SAFEMax holds longer than salun (tuned)" in first
    assert "random_label (tuned) +0 [+0, +0]" in first and "cannot tell against random_label (tuned)" in first
    assert second.startswith("**Anchoring or noise?**") and "anchoring minus noise, -" in second
    assert second.endswith("noise holds longer.") and "paired over 4 concepts" in second
    assert answers(runs[runs["method"] != "safemax"]) == []  # nothing to compare with: no sentence


def test_prompt_attacks_answer_the_seed_question_by_paired_asr_differences():
    import numpy as np
    import pandas as pd

    from unlearnbench.report.cells import Stat, column_format, phase_label
    from unlearnbench.report.frames import SETTING
    from unlearnbench.report.recovery import prompt_answers

    after = phase_label("asr_11way", "forget", "attacked")
    fmt = column_format("asr_11way", "forget")
    effects = np.linspace(0.0, 0.4, 4)

    def cell(shift: float) -> Stat:  # four concepts x two seeds sharing each concept's difficulty
        rows = pd.DataFrame({"forget_concept": np.repeat(list("0123"), 2), "seed": [0, 1] * 4,
                             "value": np.repeat(effects, 2) + shift})  # fmt: skip
        rows = rows.assign(lo=rows["value"] - 0.01, hi=rows["value"] + 0.01)
        return Stat.of_rows(rows, fmt, intervals=True)

    table = pd.DataFrame({
        "label": ["tuned, retain term", "tuned", "tuned", "paper", "tuned", "tuned"],
        "method": ["safemax", "selective_amnesia", "salun", "safemax", "esd", "random_label"],
        "attack": ["embedding_inversion"] * 5 + ["relearn"],
        SETTING: [""] * 6,
        after: [cell(0.1), cell(0.5), cell(0.1), cell(0.0), cell(0.5), cell(0.9)],
    })  # fmt: skip
    forgot = pd.Series([True, True, True, True, False, True])
    (text,) = prompt_answers(table, forgot, {"relearn"}, collapsed=frozenset({("paper", "safemax")}))
    assert "selective_amnesia (tuned) +0.400 [" in text and "easier to attack back" in text
    assert "harder to attack back): safemax (paper, collapsed) -0.100 [" in text
    assert "cannot tell: salun (tuned)" in text
    assert "esd" not in text  # it kept the concept: nothing to attack back
    assert "random_label" not in text  # relearning is the survival sentences' question


def test_a_comparison_on_one_concept_is_said_to_have_no_interval():
    """Retrain on text16 runs on one concept: its paired difference against SAFEMax has no interval, the table says
    so and the answer cannot tell (a single pair is no evidence either way)."""
    rows = []
    for concept in "01":
        rows += run_rows(f"s{concept}", "tuned, retain term", "safemax", concept, 0, 200)
    rows += run_rows("g0", "paper", "retrain", "0", 0, 50)
    runs = recovery_runs(to_frame(rows))
    table = survival_table(runs, compare_to=("tuned, retain term", "safemax")).set_index("method")
    assert table.loc["retrain", "vs"] == "-150 (one concept: no interval)"  # no interval: no "=" either
    said = " ".join(answers(runs))
    assert "retrain (paper) -150 (one concept: no interval)" in said and "cannot tell against retrain" in said
    assert "one concept gives none" in said and "SAFEMax holds longer" not in said


def test_entropy_is_set_against_recovery_within_each_family_of_concepts():
    """text16's judges read a digit 10 ways and a colour 8 ways, so their entropies have different maxima: with
    digits and a colour forgotten, rho is computed per family; digits16 (one family) keeps one group."""
    rows = []
    for concept in ("seven", "three", "red"):
        for seed in (0, 1, 2):
            for method, entropy, back in (("safemax", 2.0, 200), ("salun", 0.1, 50)):
                e = entropy + 0.01 * seed
                rows += run_rows(f"{method}{concept}{seed}", "tuned", method, concept, seed, back, entropy=e,
                                 testbed="text16")  # fmt: skip
    runs = recovery_runs(to_frame(rows))
    assert set(runs["family"]) == {"object", "colour"}
    rho = uncertainty_against_recovery(runs).set_index("runs")
    assert {"all methods (object)", "all methods (colour)"} <= set(rho.index) and "all methods" not in rho.index
    assert rho.loc["all methods (object)", "n"] == 12 and rho.loc["all methods (colour)", "n"] == 6
    digits = uncertainty_against_recovery(recovery_runs(to_frame([{**r, "testbed": "digits16"} for r in rows])))
    assert "all methods" in set(digits["runs"])


def test_the_seed_question_is_compared_across_testbeds_method_by_method():
    """digits16 and text16 answer the seed's question with their own verdicts; the page's first paragraph says, per
    method both ran, whether they put it on the same side of SAFEMax: the same label, or a method each ran once at
    another label (ESD: tuned on digits16, its paper setting on text16); prompt attacks by the side most put it on."""
    from unlearnbench.report.recovery import Verdict, testbeds_agree

    s = "s = 1, η = 0"
    digits = [
        Verdict(s, "relearning", "tuned", "salun", "more robust"),
        Verdict(s, "relearning", "tuned", "esd", "more robust"),
        Verdict(s, "relearning", "tuned", "selective_amnesia", "less robust"),
        Verdict(s, "classifier_guided", "tuned", "salun", "cannot tell"),
        Verdict(s, "embedding_mix", "tuned", "salun", "more robust"),
        Verdict(s, "seed_search", "tuned", "salun", "more robust"),
    ]
    text = [
        Verdict(s, "relearning", "tuned", "salun", "more robust"),
        Verdict(s, "relearning", "ESD-x", "esd", "cannot tell"),
        Verdict(s, "relearning", "paper", "uce", "more robust"),  # digits16 has no UCE: not compared
        Verdict(s, "other_names", "tuned", "salun", "less robust"),
    ]
    said = testbeds_agree([("digits16", digits), ("text16", text)])
    assert said.startswith("**Does text16 agree with digits16?** (s = 1, η = 0)")
    assert "the same answer in 1 of 3." in said
    assert "Agree: salun (tuned), relearning: more robust on digits16, more robust on text16." in said
    assert (
        "esd (tuned on digits16, ESD-x on text16), relearning: more robust on digits16, cannot tell on text16" in said
    )
    assert (
        "salun (tuned), prompt attacks: more robust (2 more robust, 1 cannot tell of 3 attacks) on digits16, "
        "less robust (1 less robust of 1 attacks) on text16"
    ) in said
    assert "uce" not in said and "selective_amnesia" not in said
    assert testbeds_agree([("digits16", digits)]) == "" and testbeds_agree([("digits16", digits), ("text16", [])]) == ""


def test_whether_a_run_forgot_is_read_on_its_forget_samples_as_every_table_reads_it():
    """The curve's first point is the unlearned model again, on fewer samples: near the threshold (0.8) the two
    draws disagree. The run's own forget-sample ASR decides, as it does in the forgetting and cost tables (ESD-x
    on text16: 0.81 there, 0.74 on the curve); the curve's later points give the time."""
    from unlearnbench.report.frames import split_by_sampler
    from unlearnbench.report.robustness import robustness_table

    rows = []
    for concept in "01":
        rows += run_rows(f"s{concept}", "tuned, retain term", "safemax", concept, 0, 200, measured=0.0)
    rows += run_rows("e0", "paper", "esd", "0", 0, 5, pre=0.74, measured=0.81)  # kept it, by 100 samples
    rows += run_rows("e1", "paper", "esd", "1", 0, 50, pre=0.85, measured=0.5)  # forgot it, by 100 samples
    # the unlearning's run without an attack is the one the forgetting and cost tables read: it decides
    rows += run_rows("e2", "paper", "esd", "2", 0, 25, pre=0.85, measured=0.81)
    rows.append({**rows[-1], "run_id": "n2", "attack": "none", "attack_step": None, "phase": "unlearned",
                 "metric": "asr_11way", "value": 0.5})  # fmt: skip
    frame = split_by_sampler(to_frame(rows))
    runs = recovery_runs(frame).set_index("run_id")
    assert "e0" not in runs.index and runs.loc["e1", "time"] == 50 and runs.loc["e1", "event"]
    assert runs.loc["e2", "time"] == 25  # forgot, as its unlearning's run without an attack read it
    table = robustness_table(frame, intervals=False, recovery=runs.reset_index()).set_index("method")
    assert str(table.loc["esd", "steps to recover ↑"]).endswith("(recovered 2/2)")  # e1 and e2, as in the survival
    assert str(table.loc["safemax", "steps to recover ↑"]) == "200 (recovered 2/2)"


def test_anchoring_or_noise_never_pools_two_settings_of_one_method():
    """Tuned SAFEMax without its retain term recovers at once (5 steps), with it late (300): pooled on the noise
    side they would stand in for one method; each setting is its own comparison, named."""
    rows = []
    for concept in "0123":
        rows += run_rows(f"r{concept}", "tuned, retain term", "safemax", concept, 0, 300)
        rows += run_rows(f"t{concept}", "tuned", "safemax", concept, 0, 5)
        rows += run_rows(f"a{concept}", "tuned", "salun", concept, 0, 100)
    said = [a for a in answers(recovery_runs(to_frame(rows))) if a.startswith("**Anchoring or noise?**")]
    assert len(said) == 2
    plain, retain = sorted(said, key=lambda a: "retain term" in a)
    assert "(safemax (tuned): 4 runs)" in plain and plain.endswith("anchoring holds longer.")
    assert "(safemax (tuned, retain term): 4 runs)" in retain and retain.endswith("noise holds longer.")
    assert all("(salun (tuned): 4 runs)" in a for a in said)


def test_entropy_against_recovery_keeps_each_setting_apart_and_gives_no_interval_from_one_concept():
    rows = []
    for seed, (early, late) in enumerate(zip((5, 10, 25, 50, 100), (200, 100, 50, 25, 10), strict=True)):
        rows += run_rows(f"t{seed}", "tuned", "safemax", "red", seed, early, entropy=seed, testbed="text16")
        rows += run_rows(f"p{seed}", "paper", "safemax", "red", seed, late, entropy=-seed, testbed="text16")
    rho = uncertainty_against_recovery(recovery_runs(to_frame(rows))).set_index("runs")
    assert {"safemax (tuned)", "safemax (paper)"} <= set(rho.index) and "safemax" not in rho.index
    assert rho.loc["safemax (tuned)", "rho"] == pytest.approx(1.0)
    assert rho.loc["safemax (paper)", "rho"] == pytest.approx(1.0)  # lower entropy, later: the same order
    assert rho[["lo", "hi"]].isna().all().all()  # one concept: resampling concepts gives no interval
