"""The text prompt attacks end to end on text16's shipped model: the prompt a discrete attack found is a results
column (per concept on its class_id rows), the run summary says it, and the leaderboard's robustness table shows it."""

from __future__ import annotations

from tests.test_hardening import assert_refused, cli
from unlearnbench import registry
from unlearnbench.api import SamplerSettings
from unlearnbench.attacks.unlearndiffatk import spelled
from unlearnbench.evaluate import EvalSettings
from unlearnbench.report.frames import split_by_sampler
from unlearnbench.report.robustness import FOUND, robustness_table
from unlearnbench.results import Store, load_results
from unlearnbench.runner import Runner
from unlearnbench.spec import RunSpec
from unlearnbench.summary import summary_table
from unlearnbench.testbeds import load_testbed
from unlearnbench.testbeds.text16.conditioner import CaptionConditioner
from unlearnbench.testbeds.text16.encoder import build_encoder
from unlearnbench.testbeds.text16.grammar import load_grammar

SMOKE = EvalSettings(forget_samples=4, retain_samples=1, curve_samples=2, sampler=SamplerSettings(steps=3))


def test_a_found_prompt_is_written_summarised_and_tabled(tmp_path):
    args = registry.get("attack", "other_names").smoke_args
    spec = RunSpec(method="noop", attack="other_names", attack_args=args, forget=("seven", "red"), testbed="text16",
                   eval=SMOKE, label="smoke")  # fmt: skip
    Runner(Store(tmp_path)).run(spec)
    df = load_results(tmp_path)
    attacked = df[(df.phase == "attacked") & df.attack_step.isna()]
    assert attacked["attack_prompt"].notna().all() and df[df.phase != "attacked"]["attack_prompt"].isna().all()
    per = attacked[attacked.class_id.notna()].drop_duplicates("class_id").set_index("class_id")["attack_prompt"]
    joined = attacked[attacked.class_id.isna()]["attack_prompt"].iloc[0]
    ids = [load_testbed("text16").conditioner.index(c) for c in ("seven", "red")]  # the forget concepts' order
    assert len(per) == 2 and joined == "; ".join(per[i] for i in ids)
    assert f"prompt found: {joined!r}" in summary_table(df)
    table = robustness_table(split_by_sampler(df), intervals=False)
    assert table[FOUND].iloc[0] == f'seven,red: "{joined}"'


def test_unlearndiffatk_refuses_banned_names_before_a_prompt_that_names_the_concept(capfd, tmp_path):
    """ban_names with the canonical prompt after the prefix cannot hold (the base names the concept: every
    candidate would be refused and the result would be that prompt): one line, nothing written."""
    argv = ["run", "--quiet", "--testbed", "text16", "--method", "noop", "--attack", "unlearndiffatk",
            "--attack-args", '{"ban_names": true}', "--forget", "seven", "--forget-samples", "2",
            "--retain-samples", "1", "--sample-steps", "2", "--out", str(tmp_path / "out")]  # fmt: skip
    code, out, err = cli(capfd, *argv)
    assert_refused(code, out, err, "unlearndiffatk: ban_names needs base=none", tmp_path / "out")


def test_a_projected_prefix_is_spelled_before_the_base_prompt_not_glued_onto_it():
    """A piece that starts a word ("sie+") in the prefix's last slot joins no word of the base prompt: the found
    prompt keeps the base as it was optimised ("seven", not "sieseven")."""
    conditioner = CaptionConditioner(build_encoder(0), load_grammar())
    assert conditioner.spell(["7", "sie+", "seven"]) == "7 sieseven"  # what spelling prefix and base as one did
    assert spelled(conditioner, ["7", "sie+"], "seven") == "7 sie seven"
    assert spelled(conditioner, ["sie+", "o"], "") == "sieo"
