from __future__ import annotations

from dataclasses import dataclass

import pytest

from unlearnbench.args import arg, parse, positive
from unlearnbench.errors import UserError


@dataclass(frozen=True)
class Demo:
    steps: int = positive(10, "steps")
    lr: float = positive(1e-4, "lr")
    alpha: float = arg(0.5, "weight", low=0, high=1)
    target: str = arg("noise", "target", choices=("noise", "zero"))
    flag: bool = arg(False, "a flag")


def test_defaults_and_int_to_float():
    d = parse(Demo, {"lr": 1}, "demo")
    assert d.lr == 1.0 and isinstance(d.lr, float) and d.steps == 10


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"stpes": 5}, "unknown argument 'stpes'; did you mean 'steps'?"),
        ({"steps": 0}, "'steps' must be in (0, 1000000]"),
        ({"steps": -3}, "'steps' must be in (0, 1000000]"),
        ({"lr": -1e-4}, "'lr' must be in (0, 10]"),
        ({"lr": float("nan")}, "NaN"),
        ({"steps": 2.5}, "'steps' must be int"),
        ({"steps": True}, "'steps' must be int"),
        ({"flag": 1}, "'flag' must be bool"),
        ({"alpha": 1.5}, "'alpha' must be in [0, 1], got 1.5"),
        ({"lr": float("inf")}, "'lr' must be a finite number in (0, 10], got Infinity"),
        ('{"lr": Infinity}', "Infinity is not a JSON number"),
        ({"target": "ones"}, "must be one of ['noise', 'zero']"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_arguments_are_one_line_errors(raw, fragment):
    with pytest.raises(UserError) as e:
        parse(Demo, raw, "demo")
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)
