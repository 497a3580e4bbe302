"""The text prompt attacks end to end on text16's shipped model: the prompt a discrete attack found is a results
column (per concept on its class_id rows), the run summary says it, and the leaderboard's robustness table shows it."""

from __future__ import annotations

from unlearnbench import registry
from unlearnbench.api import SamplerSettings
from unlearnbench.evaluate import EvalSettings
from unlearnbench.report.frames import split_by_sampler
from unlearnbench.report.robustness import FOUND, robustness_table
from unlearnbench.results import Store, load_results
from unlearnbench.runner import Runner
from unlearnbench.spec import RunSpec
from unlearnbench.summary import summary_table
from unlearnbench.testbeds import load_testbed

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
