"""Sweep configs with ``[[parts]]``: a union of grids that share the top level's settings (the core and full
leaderboard configs are written this way)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnbench.cli import main
from unlearnbench.errors import UserError
from unlearnbench.grid import grid_from_config, grids_from_config, load_config, specs_of

ROOT = Path(__file__).resolve().parent.parent

CONFIG = {
    "label": "paper",
    "forget_classes": [1, 2],
    "seeds": [0],
    "eval": {"forget_samples": 40, "retain_samples": 4},
    "parts": [
        {"name": "focus", "methods": ["safemax"], "seeds": [0, 1], "protocols": ["testbed", "papers"]},
        {"name": "rest", "methods": ["noop", "safemax"], "eval": {"forget_samples": 30}},
        {"name": "attacks", "methods": ["noop"], "attacks": ["none", "relearn"], "forget_classes": [3]},
    ],
}


def _settings(spec) -> tuple:
    s = spec.eval.sampler
    return (spec.method, spec.attack, spec.forget, spec.seed, s.guidance_scale, s.eta, spec.eval.forget_samples)


def test_parts_take_what_they_leave_out_from_the_top_level_and_run_each_protocol():
    specs = specs_of(grids_from_config(CONFIG))
    got = {_settings(s) for s in specs}
    # focus: 2 classes x 2 seeds x 2 protocols; the papers' protocol is s = 3, eta = 1
    focus = {
        ("safemax", "none", (c,), seed, g, eta, 40)
        for c in ("1", "2")
        for seed in (0, 1)
        for g, eta in ((None, 0.0), (3.0, 1.0))
    }
    # rest: its own forget_samples, the top level's classes and seed
    rest = {(m, "none", (c,), 0, None, 0.0, 30) for m in ("noop", "safemax") for c in ("1", "2")}
    attacks = {("noop", a, ("3",), 0, None, 0.0, 40) for a in ("none", "relearn")}
    assert got == focus | rest | attacks
    assert len(specs) == len(got) == 8 + 4 + 2
    assert all(s.label == "paper" and s.eval.retain_samples == 4 for s in specs)


def test_overlapping_parts_run_once_and_flags_win_over_every_part():
    twice = {**CONFIG, "parts": [CONFIG["parts"][1], CONFIG["parts"][1]]}
    assert len(specs_of(grids_from_config(twice))) == 4
    specs = specs_of(grids_from_config(CONFIG, {"forget_samples": 7, "guidance": 2.0, "eta": 0.5}))
    assert {(s.eval.forget_samples, s.eval.sampler.guidance_scale, s.eval.sampler.eta) for s in specs} == {
        (7, 2.0, 0.5)
    }


def test_a_tuned_part_runs_the_tuned_settings_and_refuses_a_method_without_one(tmp_path):
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"safemax": {"args": {"lam": 0.5}}, "safemax:retain term": {"args": {"lam": 2.0}}}))
    cfg = {"parts": [{"methods": ["safemax"], "tuned": str(tuned)}]}
    specs = specs_of(grids_from_config(cfg))
    assert {(s.label, s.method_args["lam"]) for s in specs} == {("tuned", 0.5), ("tuned, retain term", 2.0)}
    with pytest.raises(UserError, match=r"parts\[0\] \(x\): noop has no tuned setting"):
        grids_from_config({"parts": [{"name": "x", "methods": ["safemax", "noop"], "tuned": str(tuned)}]})
    with pytest.raises(UserError, match="no such file"):
        grids_from_config({"parts": [{"methods": ["safemax"], "tuned": str(tmp_path / "missing.json")}]})
    # a relative path is read beside the config; what the tuned file would silently replace is refused
    assert (
        len(specs_of(grids_from_config({"parts": [{"methods": ["safemax"], "tuned": "tuned.json"}]}, base=tmp_path)))
        == 2
    )
    for method, fragment in [
        ({"name": "safemax", "args": {"lam": 3.0}}, "safemax's args"),
        ({"name": "safemax", "label_dropout": 0.0}, "safemax's args, grid, label or label_dropout"),
    ]:
        with pytest.raises(UserError, match=fragment):
            grids_from_config({"parts": [{"methods": [method], "tuned": str(tuned)}]})
    with pytest.raises(UserError, match="not a label"):
        grids_from_config({"parts": [{"methods": ["safemax"], "tuned": str(tuned), "label": "mine"}]})


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({}, "no methods"),
        ({"methods": ["noop"], "parts": [{"methods": ["noop"]}]}, "'methods' beside '[[parts]]'"),
        ({"parts": []}, "parts must be a non-empty list"),
        ({"parts": [{"methods": ["noop"], "protocols": ["paper"]}]}, "must be one of ['testbed', 'papers']"),
        ({"parts": [{"methods": ["noop"], "seed": [1]}]}, "did you mean 'seeds'"),
    ],
)
def test_a_malformed_parts_config_is_one_line(cfg, message):
    with pytest.raises(UserError) as e:
        grids_from_config(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_commands_that_take_one_grid_refuse_parts(tmp_path, capsys):
    with pytest.raises(UserError, match="one grid"):
        grid_from_config(CONFIG)
    path = tmp_path / "parts.json"
    path.write_text(json.dumps(CONFIG))
    out = str(tmp_path / "out")
    assert main(["tune", "--config", str(path), "--out", out]) == 2
    assert main(["sweep", "--config", str(path), "--out", out, "--forget", "4", "--plan"]) == 2
    assert main(["sweep", "--config", str(path), "--out", out, "--tuned", str(path), "--plan"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert "tune takes a config with one grid" in errors[0] and "--forget" not in errors[0]
    assert "--forget cannot narrow" in errors[1] and "--tuned takes a config with one grid" in errors[2]
    # a config of one part is a config of parts all the same
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"parts": [{"methods": ["safemax"]}]}))
    assert main(["sweep", "--config", str(one), "--out", out, "--tuned", str(path), "--plan"]) == 2
    assert "--tuned takes a config with one grid" in capsys.readouterr().err


def test_plan_of_a_parts_config_counts_every_part(tmp_path, capsys):
    path = tmp_path / "parts.json"
    path.write_text(json.dumps(CONFIG))
    assert main(["sweep", "--config", str(path), "--out", str(tmp_path / "out"), "--plan"]) == 0
    assert "14 runs, 0 already complete" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists() or not list((tmp_path / "out" / "runs").iterdir())


@pytest.mark.parametrize(
    ("name", "runs", "within"),
    [
        ("core.toml", 690, ""),
        ("full.toml", 1884, "core.toml"),
        ("text.toml", 156, ""),
        ("text-full.toml", 263, "text.toml"),
        ("text-robustness.toml", 132, ""),
        ("text-several.toml", 2, ""),
        ("text-sa-last.toml", 1, ""),
    ],
)
def test_the_leaderboard_configs_plan_from_anywhere(name, runs, within, tmp_path, monkeypatch):
    """Their 'tuned' file is found beside them (not from the working directory), and every run resolves and
    validates as a sweep's plan does; each full config holds every run of its core one."""
    from unlearnbench.sweep import plan

    monkeypatch.chdir(tmp_path)
    path = ROOT / "configs" / name
    specs = specs_of(grids_from_config(load_config(path), base=path.parent))
    jobs, complete = plan(specs, str(tmp_path / "store"))
    assert complete == [] and sum(len(j) for j in jobs) == len(specs) == runs
    if within:
        core = ROOT / "configs" / within
        assert {s.run_id for s in specs_of(grids_from_config(load_config(core), base=core.parent))} <= {
            s.run_id for s in specs
        }


@pytest.mark.parametrize("name", ["text-several.toml", "text-sa-last.toml"])
def test_a_part_run_on_its_own_is_part_of_the_text_leaderboards_grid(name):
    """configs/text-several.toml and text-sa-last.toml (runs of configs/text.toml started beside its sweep, on a
    worker it left idle or to end within a session) name runs of configs/text.toml only, so the page counts
    them toward that config's grid."""
    ids = {}
    for config in ("text.toml", name):
        path = ROOT / "configs" / config
        ids[config] = {s.run_id for s in specs_of(grids_from_config(load_config(path), base=path.parent))}
    assert ids[name] and ids[name] <= ids["text.toml"]
