"""End to end at the real budgets (``tox -e slow``): the main command, and the prompt attacks' sanity bar.

These take minutes on 2 CPU cores, so the default suite leaves them out; the same code paths run there at
smoke budgets (``test_runner.py``, ``test_contract.py``).
"""

from __future__ import annotations

import pytest

from unlearnbench.cli import main
from unlearnbench.results import COLUMNS, Store, load_results
from unlearnbench.runner import Runner
from unlearnbench.spec import RunSpec

pytestmark = pytest.mark.slow


def test_main_command(tmp_path, capsys):
    """``unlearnbench run --method safemax --attack relearn``, exactly as the README gives it."""
    out = tmp_path / "results"
    assert main(["run", "--method", "safemax", "--attack", "relearn", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "original" in printed and "unlearned" in printed and "attacked" in printed
    df = load_results(out)
    assert list(df.columns) == COLUMNS and set(df.phase) == {"original", "unlearned", "attacked"}
    assert set(df.status) == {"ok"} and df["n_forget_samples"].eq(100).all()
    curve = df[df.attack_step.notna() & (df.metric == "asr_10way")]
    assert sorted(curve.attack_step.unique()) == [0, 25, 50, 75, 100]


@pytest.mark.parametrize(
    ("attack", "start"),
    [("embedding_inversion", "null"), ("embedding_inversion", "other"), ("classifier_guided", "null")],
)
def test_prompt_attacks_find_the_class_in_the_original_model(tmp_path, attack, start):
    """Against ``noop`` the class is there: with its own label withheld, the attack at its default budget
    must reach ASR >= 0.9 (judged by the evaluator on fresh samples)."""
    df = Runner(Store(tmp_path)).run(RunSpec(method="noop", attack=attack, forget=(0,), attack_args={"start": start}))
    asr = df[(df.phase == "attacked") & (df.metric == "asr_10way") & df.class_id.isna() & df.attack_step.isna()]
    assert len(asr) == 1 and asr["value"].iloc[0] >= 0.9, asr["value"].tolist()
