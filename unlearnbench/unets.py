"""A class-conditional UNet that feeds the class into every ResNet block beside the time embedding.

``ClassMLPUNet`` is the conditioning of the DDPM models in the unlearning papers' code (Selective
Amnesia's ``ddpm`` model, from which SalUn's DDPM code derives): the class goes through its own
embedding and a two-layer MLP to a vector ``c`` of the time embedding's width, and every ResNet block
adds ``W [silu(t_emb); silu(c)]`` to its features, so each block has its own weights for the class,
separate from those for the time. diffusers' ``UNet2DModel`` instead adds the class embedding to the time
embedding before the blocks' shared nonlinearity. The null class (for classifier-free guidance) is the
last row of ``class_embedding``, as in ``UNet2DModel``.

It is built from diffusers' own blocks (``ResnetBlock2D`` takes the concatenated ``[t; c]`` as its
"time" embedding) and is a diffusers model: ``save_pretrained``/``from_pretrained`` with safetensors.
The call signature, ``class_embedding`` and the config keys the project reads (``num_class_embeds``,
``class_embed_type``, ``in_channels``, ``sample_size``) match ``UNet2DModel``'s, so sampling, losses and
the embedding-space attacks work unchanged.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d import UNet2DOutput
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, get_down_block, get_up_block
from torch import nn


class ClassMLPUNet(ModelMixin, ConfigMixin):
    """UNet whose ResNet blocks each read the time embedding and a class embedding (own MLP), concatenated."""

    @register_to_config
    def __init__(
        self,
        sample_size: int = 16,
        in_channels: int = 1,
        out_channels: int = 1,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        num_class_embeds: int = 11,
        norm_num_groups: int = 8,
        attention_head_dim: int = 8,
        dropout: float = 0.1,
        class_embed_type: str | None = None,
    ) -> None:
        super().__init__()
        if class_embed_type is not None:
            raise ValueError("ClassMLPUNet embeds class labels itself; class_embed_type must be None")
        if len(down_block_types) != len(block_out_channels) or len(up_block_types) != len(block_out_channels):
            raise ValueError("down_block_types, up_block_types and block_out_channels must have the same length")
        base = block_out_channels[0]
        embed_dim = 4 * base
        both = 2 * embed_dim  # every block's "time" input is [t_emb; c_emb]
        self.conv_in = nn.Conv2d(in_channels, base, kernel_size=3, padding=1)
        self.time_proj = Timesteps(base, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(base, embed_dim)
        self.class_embedding = nn.Embedding(num_class_embeds, base)
        self.class_mlp = TimestepEmbedding(base, embed_dim)  # Linear-SiLU-Linear

        common = {
            "temb_channels": both,
            "resnet_eps": 1e-5,
            "resnet_act_fn": "silu",
            "resnet_groups": norm_num_groups,
            "attention_head_dim": attention_head_dim,
            "dropout": dropout,
        }
        self.down_blocks = nn.ModuleList()
        out_ch = base
        for i, kind in enumerate(down_block_types):
            in_ch, out_ch = out_ch, block_out_channels[i]
            last = i == len(block_out_channels) - 1
            self.down_blocks.append(
                get_down_block(
                    kind,
                    num_layers=layers_per_block,
                    in_channels=in_ch,
                    out_channels=out_ch,
                    add_downsample=not last,
                    downsample_padding=1,
                    **common,
                )
            )
        self.mid_block = UNetMidBlock2D(
            in_channels=block_out_channels[-1],
            temb_channels=both,
            dropout=dropout,
            resnet_eps=1e-5,
            resnet_act_fn="silu",
            attention_head_dim=attention_head_dim,
            resnet_groups=norm_num_groups,
        )
        self.up_blocks = nn.ModuleList()
        widths = list(reversed(block_out_channels))
        out_ch = widths[0]
        for i, kind in enumerate(up_block_types):
            prev, out_ch = out_ch, widths[i]
            in_ch = widths[min(i + 1, len(widths) - 1)]
            last = i == len(widths) - 1
            self.up_blocks.append(
                get_up_block(
                    kind,
                    num_layers=layers_per_block + 1,
                    in_channels=in_ch,
                    out_channels=out_ch,
                    prev_output_channel=prev,
                    add_upsample=not last,
                    **common,
                )
            )
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, base, eps=1e-5)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(base, out_channels, kernel_size=3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        class_labels: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple[torch.Tensor]:
        """``eps_theta(x_t, t, c)``; ``class_labels`` is required (the null class is the last label)."""
        if class_labels is None:
            raise ValueError("ClassMLPUNet is class-conditional: pass class_labels (the null class for none)")
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(sample.shape[0]) if t.numel() == 1 else t
        t_emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        c_emb = self.class_mlp(self.class_embedding(class_labels).to(sample.dtype))
        emb = torch.cat([t_emb, c_emb], dim=-1)

        h = self.conv_in(sample)
        skips: tuple[torch.Tensor, ...] = (h,)
        for block in self.down_blocks:
            h, res = block(hidden_states=h, temb=emb)
            skips += res
        h = self.mid_block(h, emb)
        for block in self.up_blocks:
            n = len(block.resnets)
            h = block(h, skips[-n:], emb)
            skips = skips[:-n]
        h = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        return UNet2DOutput(sample=h) if return_dict else (h,)
