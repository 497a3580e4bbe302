"""A testbed defined entirely in this module: non-numeric concepts and token conditioning to a tiny
``UNet2DConditionModel``. It runs ``run``, ``sweep`` and ``leaderboard`` end to end and the contract of every
method and attack that supports tokens, with nothing outside this file knowing it exists: the testbed seam.

Sweep workers import it by name (``--plugin tests.test_toy_testbed``), as they would an outside plugin.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from tests.conftest import tiny_cross_attention_unet
from unlearnbench import registry
from unlearnbench.api import run_attack, run_unlearning, unsupported
from unlearnbench.cli import main
from unlearnbench.conditioning import Conditioner, Conditioning
from unlearnbench.data import ImageData
from unlearnbench.errors import UserError
from unlearnbench.models import ClassifierArch, load_classifier, save_classifier
from unlearnbench.registry import register
from unlearnbench.runner import build_task, resolve
from unlearnbench.spec import RunSpec
from unlearnbench.testbed import Overrides, Testbed, TestbedPlugin

SHAPES = ("circle", "square", "triangle", "cross")
PLUGIN = "tests.test_toy_testbed"
TOKENS, WIDTH = 4, 8


class ShapeTokens(Conditioner):
    """Each concept is a fixed random sequence of token states (a stand-in for a frozen text encoder)."""

    kind = "tokens"

    def __init__(self) -> None:
        super().__init__(SHAPES)
        generator = torch.Generator().manual_seed(0)
        self.table = torch.randn(len(SHAPES), TOKENS, WIDTH, generator=generator)
        self.null = torch.zeros(TOKENS, WIDTH)

    def encode_ids(self, ids: torch.Tensor) -> Conditioning:
        return Conditioning.from_tokens(self.table[ids.cpu()].to(ids.device), self.null, concepts=ids)

    def names(self, concept: str) -> tuple[str, ...]:
        return (self.concepts[self.index(concept)],)

    def neighbours(self, concept: str) -> tuple[str, ...]:
        return (self.concepts[(self.index(concept) + 1) % len(self.concepts)],)

    def prompt_pairs(self, concept: str, instead: str) -> list[tuple[str, str]]:
        return [(self.concepts[self.index(concept)], self.concepts[self.index(instead)])]

    def prompts(self, prompts: Sequence[str], concepts: torch.Tensor | None = None) -> Conditioning:
        return Conditioning.from_tokens(self.prompt_states(prompts)[0], self.null, concepts=concepts)

    # What the prompt attacks read: a shape's one name is its canonical prompt and its only word; a word's input
    # embedding is its row's mean state, and a prompt with free leading slots takes them as its first states.
    def canonical_prompt(self, concept: str) -> str:
        return self.concepts[self.index(concept)]

    def heldout_prompts(self, concept: str) -> list[str]:
        return [self.canonical_prompt(concept)]

    def banned_words(self, concept: str) -> frozenset[str]:
        return frozenset({self.canonical_prompt(concept)})

    def search_words(self, banned: Collection[str] = ()) -> tuple[str, ...]:
        return tuple(c for c in ("a", *self.concepts) if c not in banned)

    def word_embeddings(self, words: Sequence[str]) -> torch.Tensor:  # "a" (which names nothing): the null's
        return torch.stack([self.null.mean(0) if w == "a" else self.table[self.index(w)].mean(0) for w in words])

    def prefixed(self, slots: torch.Tensor, base: Sequence[str]) -> Conditioning:
        states = self.prompt_states(base)[0].clone()
        p = min(slots.shape[1], TOKENS)
        states = torch.cat([slots[:, :p].to(states), states[:, p:]], dim=1)
        return Conditioning.from_tokens(states, self.null)

    def prompt_states(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """A prompt reads as its last word's shape (its row, its last word at the last position); blank: the null."""
        rows = [self.null if not p.strip() else self.table[self.index(p.split()[-1])] for p in prompts]
        last = [0 if not p.strip() else TOKENS - 1 for p in prompts]
        return torch.stack(rows), torch.tensor(last)


def draw_shape(kind: int, jitter: torch.Tensor) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    cy, cx = 7.5 + jitter[0], 7.5 + jitter[1]
    dy, dx = y - cy, x - cx
    if kind == 0:
        mask = ((dy**2 + dx**2).sqrt() - 5).abs() < 1.2
    elif kind == 1:
        mask = (dy.abs().maximum(dx.abs()) - 5).abs() < 1.0
    elif kind == 2:
        mask = (dy > -5) & (dy < 5) & (dx.abs() < (dy + 5) / 2)
    else:
        mask = (dy.abs() < 1.2) | (dx.abs() < 1.2)
    return mask.float() * 2 - 1


def shapes_data() -> ImageData:
    generator = torch.Generator().manual_seed(0)
    images, labels = [], []
    for kind in range(len(SHAPES)):
        for _ in range(30):
            images.append(draw_shape(kind, torch.randint(-2, 3, (2,), generator=generator).float()))
            labels.append(kind)
    x, y = torch.stack(images)[:, None], torch.tensor(labels)
    test = torch.arange(len(y)) % 5 == 0
    return ImageData("toyshapes", x[~test], y[~test], x[test], y[test], len(SHAPES), SHAPES)


def judge_file(seed: int, widths: tuple[int, ...]) -> tuple[Path, str]:
    """A small untrained judge with 'none', saved where torch-fidelity's extractor can read it."""
    folder = Path(tempfile.gettempdir()) / "unlearnbench-toy-testbed"
    folder.mkdir(exist_ok=True)
    path = folder / f"judge-{seed}.safetensors"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        judge = ClassifierArch(num_outputs=len(SHAPES) + 1, widths=widths, feature_dim=8, dropout=0.0).build()
    if not path.is_file():
        save_classifier(judge.eval(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@register("toyshapes")
class ToyShapes(TestbedPlugin):
    """Toy shapes with token conditioning (a test's testbed)."""

    def load(self, parts: Overrides, *, device: str = "cpu", download: bool = False) -> Testbed:
        parts.refuse("toyshapes")
        unet = tiny_cross_attention_unet(16, WIDTH)
        weights = b"".join(t.detach().numpy().tobytes() for t in unet.state_dict().values())
        ev_path, ev_sha = judge_file(0, (4, 8))
        at_path, at_sha = judge_file(1, (4,))
        return Testbed(
            name="toyshapes",
            model_source=None,
            data=shapes_data(),
            model=unet.eval().requires_grad_(False).to(device),
            schedule=DDPMScheduler(num_train_timesteps=1000),
            model_sha=hashlib.sha256(weights).hexdigest(),
            conditioner=ShapeTokens(),
            evaluator=load_classifier(ev_path).to(device),
            evaluator_path=ev_path,
            evaluator_sha=ev_sha,
            attacker=load_classifier(at_path).to(device),
            attacker_sha=at_sha,
        )


SMOKE = ["--forget-samples", "4", "--retain-samples", "2", "--curve-samples", "2", "--sample-steps", "2"]


@pytest.fixture(scope="module")
def toy():
    from unlearnbench.testbeds import load_testbed

    return load_testbed("toyshapes")


def test_the_toy_testbed_is_listed_beside_digits16(capsys):
    assert main(["list", "testbeds", "--plugin", PLUGIN]) == 0
    out = capsys.readouterr().out
    assert "toyshapes" in out and "digits16" in out and "sklearn digits" in out


def test_run_sweep_and_leaderboard_end_to_end_with_named_concepts(tmp_path, capsys):
    store = tmp_path / "store"
    code = main(
        ["run", "--plugin", PLUGIN, "--testbed", "toyshapes", "--method", "safemax", "--attack", "relearn"]
        + ["--forget", "circle", "--method-args", '{"steps": 2, "batch_size": 4}']
        + ["--attack-args", '{"k": 2, "steps": 2, "batch_size": 2, "eval_every": 1}', "--out", str(store), "--quiet"]
        + SMOKE
    )
    assert code == 0, capsys.readouterr().err
    rows = pd.read_parquet(next((store / "runs").glob("*.parquet")))
    assert set(rows.forget_concept) == {"circle"} and set(rows.n_forget) == {1} and rows.forget_class.isna().all()
    assert set(rows.phase) == {"original", "unlearned", "attacked"} and (rows.status == "ok").all()
    assert set(rows.testbed) == {"toyshapes"} and set(rows.protocol) == {"testbed"}

    config = tmp_path / "toy.toml"
    config.write_text(
        'forget = ["square", ["circle", "cross"]]\n'
        'methods = [{ name = "finetune", args = { steps = 2, batch_size = 4 } }, "noop"]\n'
        '[testbed]\ntestbed = "toyshapes"\n'
        "[eval]\nforget_samples = 4\nretain_samples = 2\ncurve_samples = 2\nsample_steps = 2\n"
    )
    sweep = ["sweep", "--plugin", PLUGIN, "--config", str(config), "--out", str(store), "--quiet", "--workers", "1"]
    assert main(sweep) == 0, capsys.readouterr().err
    frame = pd.concat(pd.read_parquet(p) for p in (store / "runs").glob("*.parquet"))
    assert set(frame.forget_concept) == {"circle", "square", "circle,cross"}
    assert set(frame[frame.forget_concept == "circle,cross"].n_forget) == {2}
    assert main(["leaderboard", "--results", str(store), "--out", str(tmp_path / "board")]) == 0
    page = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "finetune" in page and "safemax" in page


def test_an_unknown_concept_is_one_line_with_the_closest_name(capsys, tmp_path):
    code = main(["run", "--plugin", PLUGIN, "--testbed", "toyshapes", "--method", "noop", "--forget", "cirle"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "did you mean 'circle'" in err


TOKEN_METHODS = [n for n in registry.names("method") if "tokens" in registry.get("method", n).supports]
TOKEN_ATTACKS = [n for n in registry.names("attack") if "tokens" in registry.get("attack", n).supports]


@pytest.mark.parametrize("name", TOKEN_METHODS)
def test_every_method_that_supports_tokens_unlearns_on_the_toy_testbed(name, toy):
    cls = registry.get("method", name)
    if name == "given":
        pytest.skip("given loads a saved model: tests/test_given.py")
    spec = resolve(RunSpec(method=name, forget=("circle",), testbed="toyshapes", method_args=cls.smoke_args)).spec
    task = build_task(spec, toy, torch.device("cpu"))
    if name == "retrain":  # a testbed without shipped references or a recorded recipe: one line, nothing trained
        with pytest.raises(UserError, match="no retrained reference for circle ships with this testbed"):
            run_unlearning(cls(cls.smoke_args), toy.model, task, generator=torch.Generator().manual_seed(0))
        return
    out = run_unlearning(cls(cls.smoke_args), toy.model, task, generator=torch.Generator().manual_seed(0))
    assert type(out.model) is UNet2DConditionModel and dict(out.model.config) == dict(toy.model.config)
    assert all(torch.isfinite(p).all() for p in out.model.parameters())
    changed = any(not torch.equal(a, b) for a, b in zip(out.model.parameters(), toy.model.parameters(), strict=True))
    assert changed == (name != "noop")


@pytest.mark.parametrize("name", TOKEN_ATTACKS)
def test_every_attack_that_supports_tokens_runs_on_the_toy_testbed(name, toy):
    cls = registry.get("attack", name)
    spec = resolve(RunSpec(method="noop", attack=name, forget=("square",), testbed="toyshapes")).spec
    task = build_task(spec, toy, torch.device("cpu"))
    task.eval_forget_samples = 4
    out, cost = run_attack(cls(cls.smoke_args), toy.model, task, generator=torch.Generator().manual_seed(0))
    assert cost.wall_s > 0 and (out.cond is None or out.cond.kind == "tokens")


def test_label_space_searches_say_why_they_do_not_run_on_tokens(toy):
    reasons = {n: unsupported(registry.get("attack", n), toy.conditioner) for n in registry.names("attack")}
    assert reasons["embedding_inversion"] == "embedding_inversion supports label conditioning, the testbed's is tokens"
    assert reasons["relearn"] is None
