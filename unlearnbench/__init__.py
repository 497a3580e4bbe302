"""unlearnbench: a benchmark for machine unlearning in diffusion models."""

from __future__ import annotations

__version__ = "0.1.0"
