from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from unlearnbench.conditioning import ClassConditioner, Conditioning
from unlearnbench.diffusion import (
    EMA,
    add_noise,
    ddim_sample,
    denoising_loss,
    guided_noise,
    predict_noise,
)

COND = ClassConditioner(10)


def labels(*ys: int) -> Conditioning:
    return COND.encode(list(ys))


def table(model):
    return model.class_embedding.weight


def test_guidance_scale_one_is_the_conditional_prediction(tiny_unet):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 1, 16, 16, generator=g)
    t = torch.randint(0, 1000, (6,), generator=g)
    y = labels(*range(6))
    # perturb the null embedding so that a wrong mixing would show
    with torch.no_grad():
        table(tiny_unet)[10] += 1.0
    plain = predict_noise(tiny_unet, x, t, y)
    assert torch.equal(guided_noise(tiny_unet, x, t, y, 1.0), plain)
    guided = guided_noise(tiny_unet, x, t, y, 2.0)
    null = predict_noise(tiny_unet, x, t, COND.null_like(y))
    assert torch.equal(COND.null_like(y).labels, torch.full((6,), 10))
    torch.testing.assert_close(guided, null + 2.0 * (plain - null), rtol=1e-4, atol=1e-5)
    # a vector conditioning is guided away from the fed model's null embedding
    vectors = COND.vectors(table(tiny_unet)[y.labels].detach())
    torch.testing.assert_close(guided_noise(tiny_unet, x, t, vectors, 2.0), guided, rtol=1e-4, atol=1e-5)


def test_embedding_conditioning_equals_label_conditioning(tiny_unet):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 1, 16, 16, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    y = Conditioning.from_labels(torch.tensor([3, 1, 4, 10]), 10)
    vectors = table(tiny_unet)[y.labels]
    by_label = predict_noise(tiny_unet, x, t, y)
    torch.testing.assert_close(predict_noise(tiny_unet, x, t, COND.vectors(vectors)), by_label)
    # and the vectors are a real input: a different vector gives a different prediction
    assert not torch.allclose(predict_noise(tiny_unet, x, t, COND.vectors(vectors + 1.0)), by_label)


def test_embedding_conditioning_is_differentiable(tiny_unet):
    vec = table(tiny_unet)[[2]].detach().clone().requires_grad_(True)
    x = torch.randn(1, 1, 16, 16)
    predict_noise(tiny_unet, x, torch.tensor([100]), COND.vectors(vec)).pow(2).sum().backward()
    assert vec.grad is not None and vec.grad.abs().sum() > 0


def test_same_seed_same_samples_and_batch_size_does_not_matter(tiny_unet, schedule):
    y = labels(*range(10))
    a = ddim_sample(tiny_unet, schedule, y, generator=torch.Generator().manual_seed(7), steps=5, eta=0.5, batch_size=10)
    b = ddim_sample(tiny_unet, schedule, y, generator=torch.Generator().manual_seed(7), steps=5, eta=0.5, batch_size=3)
    c = ddim_sample(tiny_unet, schedule, y, generator=torch.Generator().manual_seed(8), steps=5, eta=0.5)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (10, 1, 16, 16) and a.min() >= -1 and a.max() <= 1


@pytest.mark.parametrize("clip", [False, True])
def test_sampler_follows_diffusers_ddim(tiny_unet, schedule, clip):
    """Our loop must equal a hand-run diffusers DDIMScheduler loop on the same noise, with and without
    per-step clipping of the predicted x0."""
    y = labels(1, 2)
    x_T = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    ours = ddim_sample(tiny_unet, schedule, y, generator=torch.Generator(), steps=4, x_T=x_T.clone(), clip_sample=clip)
    sched = DDIMScheduler.from_config(schedule.config, clip_sample=clip)
    sched.set_timesteps(4)
    x = x_T.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            eps = tiny_unet(x, t, class_labels=torch.tensor([1, 2])).sample
            x = sched.step(eps, t, x).prev_sample
    torch.testing.assert_close(ours, x.clamp(-1, 1))


def test_default_sampler_is_upstreams_generalized_steps(tiny_unet, schedule):
    """Upstream (SA/SalUn ``generalized_steps``, eta 0): x_next = sqrt(a_next) x0 + sqrt(1 - a_next) eps with
    x0 = (x - sqrt(1 - a) eps) / sqrt(a), never clipped; only the final image is clamped."""
    y = labels(4, 7)
    x_T = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(5)) * 3  # far outside [-1, 1]
    ours = ddim_sample(tiny_unet, schedule, y, generator=torch.Generator(), steps=5, x_T=x_T.clone())
    abar = schedule.alphas_cumprod
    seq = list(range(0, 1000, 200))  # upstream's uniform skip: 0, 200, ..., 800
    x = x_T.clone()
    with torch.no_grad():
        for i, j in zip(reversed(seq), reversed([-1, *seq[:-1]]), strict=True):
            a, a_next = abar[i], (abar[j] if j >= 0 else torch.tensor(1.0))
            eps = tiny_unet(x, torch.full((2,), i), class_labels=torch.tensor([4, 7])).sample
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    torch.testing.assert_close(ours, x.clamp(-1, 1), rtol=1e-4, atol=1e-4)
    clipped = ddim_sample(
        tiny_unet, schedule, y, generator=torch.Generator(), steps=5, x_T=x_T.clone(), clip_sample=True
    )
    assert not torch.allclose(ours, clipped)  # the clipped sampler is another sampler


def test_differentiable_sampling_passes_gradients_to_the_prompt(tiny_unet, schedule):
    vec = table(tiny_unet)[[5]].detach().clone().requires_grad_(True)
    out = ddim_sample(
        tiny_unet, schedule, COND.vectors(vec), generator=torch.Generator().manual_seed(0), steps=3, grad=True
    )
    out.mean().backward()
    assert vec.grad is not None and torch.isfinite(vec.grad).all() and vec.grad.abs().sum() > 0


def test_add_noise_matches_the_closed_form(schedule):
    x0 = torch.rand(3, 1, 16, 16) * 2 - 1
    x_t, t, eps = add_noise(schedule, x0, generator=torch.Generator().manual_seed(0))
    abar = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * eps)


def test_denoising_loss_is_lower_for_a_model_that_predicts_the_noise(schedule):
    class Oracle(torch.nn.Module):
        """Knows x0 and so recovers eps exactly from x_t."""

        def __init__(self, x0):
            super().__init__()
            self.x0 = x0
            self.config = type("C", (), {"num_class_embeds": 11})

        def forward(self, x_t, t, class_labels=None):
            abar = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
            return type("O", (), {"sample": (x_t - abar.sqrt() * self.x0) / (1 - abar).sqrt()})

    x0 = torch.rand(8, 1, 16, 16) * 2 - 1
    loss = denoising_loss(Oracle(x0), schedule, x0, COND.encode([0] * 8), generator=torch.Generator())
    assert loss < 1e-8


def test_ema_tracks_parameters(tiny_unet):
    ema = EMA(tiny_unet, decay=0.5)
    with torch.no_grad():
        for p in tiny_unet.parameters():
            p.add_(1.0)
    before = [s.clone() for s in ema.shadow.parameters()]
    ema.update(tiny_unet)
    for s, b, p in zip(ema.shadow.parameters(), before, tiny_unet.parameters(), strict=False):
        torch.testing.assert_close(s, 0.5 * b + 0.5 * p)


def test_clipping_is_a_setting_recorded_with_every_number():
    from unlearnbench.cli import build_parser
    from unlearnbench.evaluate import eval_settings
    from unlearnbench.flags import eval_overrides
    from unlearnbench.results import SCHEMA
    from unlearnbench.schema import parse_sweep_config

    assert eval_settings({}).sampler.clip_sample is False
    assert eval_settings({"protocol": "papers"}).sampler.clip_sample is False
    args = build_parser().parse_args(["run", "--method", "noop", "--clip-sample"])
    assert eval_settings(eval_overrides(args)).sampler.clip_sample is True
    assert parse_sweep_config({"methods": ["noop"], "eval": {"clip_sample": True}}).eval.clip_sample is True
    assert "clip_sample" in SCHEMA
