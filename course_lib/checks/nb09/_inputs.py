"""Seeded query, key and value tensors for the checkers of notebook 09."""

from __future__ import annotations

import torch

from ..framework import CheckContext


def _qkv(t: CheckContext, lead, L, S, E, Ev, dtype=torch.float32, scale=1.0):
    return (t.randn(*lead, L, E, dtype=dtype, scale=scale), t.randn(*lead, S, E, dtype=dtype, scale=scale),
            t.randn(*lead, S, Ev, dtype=dtype))
