"""A metric is one file: a toy metric registered here shows up in the run summary, the leaderboard and
``check`` with no other change; a metric without declared rows or tolerances is refused at registration."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tests.test_runner import spec
from unlearnbench import registry
from unlearnbench.api import Metric, Row, Score, Tolerance
from unlearnbench.cli import main
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.regression import compare
from unlearnbench.results import Store, load_results
from unlearnbench.runner import Runner
from unlearnbench.summary import summary_table

TOY = Row(
    "toy_brightness",
    "forget",
    "max",
    "toy brightness",
    Tolerance(floor=0.05, z=0.0),
    digits=4,
    summary=99,
    leaderboard=99,
)


@pytest.fixture(scope="module")
def toy_metric():
    @registry.register("toy_brightness")
    class ToyBrightness(Metric):
        """Mean pixel value of the forget samples (a toy: it only proves the plumbing)."""

        rows = (TOY,)

        def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
            if samples.forget is None:
                return []
            return [Score("toy_brightness", "forget", float(samples.forget.images.mean()), n=len(samples.forget))]

    yield ToyBrightness
    registry.unregister("metric", "toy_brightness")


@pytest.fixture(scope="module")
def toy_store(toy_metric, tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    Runner(Store(root)).run(spec(attack="none"))
    return root


def test_a_registered_metric_reaches_the_rows_and_the_summary(toy_store):
    df = load_results(toy_store)
    rows = df[df.metric == "toy_brightness"]
    assert set(rows.phase) == {"original", "unlearned"} and set(rows.goal) == {"max"}
    summary = summary_table(df)
    assert "toy brightness" in summary.splitlines()[-1]  # summary position 99: the last line
    value = rows[rows.phase == "original"].value.iloc[0]
    assert f"{value:.4f}" in summary


def test_a_registered_metric_is_a_leaderboard_column(toy_store):
    from unlearnbench.report import tables

    quality = tables.build_tables(load_results(toy_store)).quality
    assert list(quality.columns)[-1] == "toy brightness ↑"
    assert quality["toy brightness ↑"].map(lambda cell: cell.digits).eq(4).all()


def _shifted(df: pd.DataFrame, by: float) -> pd.DataFrame:
    out = df.copy()
    toy = out.metric == "toy_brightness"
    out.loc[toy, "value"] = out.loc[toy, "value"] + by
    return out


def test_check_follows_the_declared_tolerance(toy_store, tmp_path, capsys):
    baseline = load_results(toy_store)
    assert compare(baseline, _shifted(baseline, -0.04)).regressions.empty  # within the 0.05 floor
    worse = compare(baseline, _shifted(baseline, -0.2)).regressions
    assert set(worse.metric) == {"toy_brightness"}
    for by, code in ((-0.04, 0), (-0.2, 1), (+0.2, 0)):  # higher is better: only a drop regresses
        path = tmp_path / f"fresh{by}.parquet"
        _shifted(baseline, by).to_parquet(path)
        assert main(["check", "--baseline", str(toy_store), "--results", str(path)]) == code
    assert "toy_brightness" in capsys.readouterr().out


def test_a_metric_needs_declared_rows_with_tolerances():
    with pytest.raises(ValueError, match="declares no rows"):

        @registry.register("toy_undeclared")
        class Undeclared(Metric):
            pass

    with pytest.raises(ValueError, match="needs a Tolerance"):
        Row("toy", "forget", "max", "toy", None)  # type: ignore[arg-type]
    assert "toy_undeclared" not in registry.names("metric")


def test_two_metrics_cannot_declare_the_same_row(toy_metric):
    with pytest.raises(ValueError, match="already declared"):

        @registry.register("toy_copy")
        class Copy(Metric):
            rows = (TOY,)


def test_tolerance_rule_follows_standard_errors():
    rule = Tolerance(floor=0.01, relative=0.1, z=2.0)
    assert rule.allowed(0.5) == pytest.approx(0.05)
    assert rule.allowed(0.05, 0.03, 0.04) == pytest.approx(2 * 0.05)
    assert rule.allowed(0.0, math.nan, math.nan) == pytest.approx(0.01)
