"""text16: text-to-image unlearning on coloured 16x16 digits with captions (in progress).

What exists: the data and its caption grammar (``data.py``, ``grammar.toml``), the open_clip text encoder and its
contrastive training (``encoder.py``, ``build.py``: ``unlearnbench pretrain --testbed text16 --what encoder``).
What does not yet: the cross-attention UNet, the judges and the quality bars, so the testbed does not load; a
run on it says so in one line.
"""

from __future__ import annotations

from typing import Any

from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.testbed import Overrides, Testbed, TestbedPlugin

NAME = "text16"


@register(NAME)
class Text16(TestbedPlugin):
    """Text-to-image on coloured digits with captions (in progress: data and text encoders; no model yet)."""

    pretrain_targets = ("encoder", "clip_scorer", "unet", "evaluator", "attacker", "judge2", "style_judge")

    def load(self, parts: Overrides, *, device: str = "cpu", download: bool = False) -> Testbed:
        raise UserError(
            "the text16 testbed has no diffusion model or judges yet (its data and text encoders exist: "
            "'unlearnbench pretrain --testbed text16 --what encoder --out DIR'); use --testbed digits16"
        )

    def pretrain(self, args: Any) -> int:
        from unlearnbench.testbeds.text16.build import pretrain

        return pretrain(args)
