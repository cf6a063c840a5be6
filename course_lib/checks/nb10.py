"""Checks for notebook 10 (interpretability): exercise 10.1, attention rollout (Abnar & Zuidema 2020).

Contract: ``attention_rollout(attentions) -> (B, L, L)``; attentions a list of
(B, H, L, L) maps, first layer first; average the heads, A' = 0.5 A + 0.5 I,
rows renormalised, R = A'_last ... A'_first. The maps given are softmax
outputs, except in one sub-check whose rows are scaled (as after dropout),
which tells renormalising from not renormalising.
"""

from __future__ import annotations

import torch

from ..interpret import attention_rollout as _reference
from .framework import CheckContext, Misconception, checker


def _mixed(a, identity=0.5, renorm=True):
    m = (1 - identity) * a.mean(1) + identity * torch.eye(a.shape[-1], dtype=a.dtype)  # (B, L, L)
    return m / m.sum(-1, keepdim=True) if renorm else m


def _product(maps, first_on_left=False):
    out = maps[0]
    for m in maps[1:]:
        out = out @ m if first_on_left else m @ out
    return out


NO_IDENTITY = Misconception(
    "forgets the identity",
    "Your rollout seems to multiply the raw (head-averaged) attention maps without adding the identity. "
    "Each block adds attention's output to the residual stream, so a token also keeps its own state: "
    "use A' = 0.5 A + 0.5 I before multiplying.",
    lambda attentions: _product([a.mean(1) for a in attentions]),
)
NO_RENORM = Misconception(
    "does not renormalise the rows",
    "Your rollout seems to skip the renormalisation: after mixing in the identity, divide each row of A' "
    "by its sum (sum(-1, keepdim=True)), so that every row is a distribution even when the maps' rows do "
    "not sum exactly to 1.",
    lambda attentions: _product([_mixed(a, renorm=False) for a in attentions]),
)
PLUS_IDENTITY_NO_RENORM = Misconception(
    "adds I without halving or renormalising",
    "Your rollout seems to use A + I without renormalising: its rows then sum to 2 per layer and the "
    "product grows with depth. Use A' = 0.5 A + 0.5 I and renormalise the rows.",
    lambda attentions: _product([a.mean(1) + torch.eye(a.shape[-1], dtype=a.dtype) for a in attentions]),
)
WRONG_ORDER = Misconception(
    "multiplies in the wrong order",
    "Your rollout seems to multiply the layers in the wrong order (first layer on the left). Position i "
    "after the last layer reads the previous layer's positions: R = A'_last ... A'_first, each new layer "
    "multiplying on the left.",
    lambda attentions: _product([_mixed(a) for a in attentions], first_on_left=True),
)
AVERAGE_AFTER = Misconception(
    "averages the heads after the rollout",
    "Your rollout seems to roll out each head separately and average the heads at the end. Heads mix "
    "within every layer: average the heads of each layer first, then multiply the layers.",
    lambda attentions: _product([
        (lambda m: m / m.sum(-1, keepdim=True))(0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype))
        for a in attentions]).mean(1),
)
SUMS_HEADS = Misconception(
    "sums the heads",
    "Your rollout seems to add the heads instead of averaging them, which gives attention H times the "
    "weight of the residual. Use a.mean(dim=1).",
    lambda attentions: _product([
        (lambda m: m / m.sum(-1, keepdim=True))(0.5 * a.sum(1) + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype))
        for a in attentions]),
)
LAST_LAYER_ONLY = Misconception(
    "uses the last layer only",
    "Your rollout seems to return the last layer's mixed map only. Rollout multiplies the mixed maps of "
    "all layers, so that it traces the flow back to the input tokens.",
    lambda attentions: _mixed(attentions[-1]),
)
TRANSPOSED = Misconception(
    "transposed",
    "Your result seems to be transposed: row i must say how much each input token contributes to "
    "position i, so every row (not column) sums to 1.",
    lambda attentions: _reference(list(attentions)).transpose(-2, -1),
)

MISCONCEPTIONS = [NO_IDENTITY, PLUS_IDENTITY_NO_RENORM, WRONG_ORDER, AVERAGE_AFTER, SUMS_HEADS, LAST_LAYER_ONLY,
                  TRANSPOSED, NO_RENORM]


def _maps(t: CheckContext, layers: int, B: int, H: int, L: int, dtype=torch.float32) -> list[torch.Tensor]:
    return [torch.softmax(t.randn(B, H, L, L, dtype=dtype, scale=2.0), dim=-1) for _ in range(layers)]


def _clones(maps):
    return [m.clone() for m in maps]


@checker("10.1", misconceptions=MISCONCEPTIONS, mutation_weight=0.5)
def check_attention_rollout(t: CheckContext, attention_rollout) -> None:
    """Sub-checks of 10.1, cheap to deep; weights are shares of the exercise's points."""
    B, H, L = t.random.randint(2, 3), t.random.randint(2, 4), t.random.randint(4, 7)
    maps0 = _maps(t, 3, B, H, L)
    what0 = f"attention_rollout of 3 layers of maps ({B}, {H}, {L}, {L})"
    first: dict = {}

    @t.subcheck("returns a torch.Tensor", weight=0.5, essential=True)
    def _():
        first["out"] = t.expect_tensor(t.call(attention_rollout, _clones(maps0)), what0)

    @t.subcheck("the result has shape (B, L, L)", weight=0.5, essential=True)
    def _():
        t.expect_shape(first["out"], (B, L, L), what0, args=(maps0,))

    @t.subcheck("equals the reference for 1 to 4 layers of several shapes", weight=1.5, essential=True)
    def _():
        for layers in (1, 2, 4):
            b, h, l = t.random.randint(1, 3), t.random.randint(1, 4), t.random.randint(3, 8)
            maps = _maps(t, layers, b, h, l)
            expected = _reference(maps)
            out = t.expect_tensor(t.call(attention_rollout, _clones(maps)), f"{layers} layers")
            t.expect_close(out, expected, f"attention_rollout of {layers} layers of maps ({b}, {h}, {l}, {l})",
                           atol=1e-5, args=(maps,), reference="the rollout")

    @t.subcheck("every row sums to 1", weight=0.5)
    def _():
        t.expect_close(first["out"].sum(-1), torch.ones(B, L), f"the row sums of {what0}",
                       atol=1e-5,
                       hint="Each row of the rollout must be a distribution: renormalise the rows of every A'.")

    @t.subcheck("renormalises rows even when the maps' rows do not sum to 1 (as after dropout)", weight=0.5)
    def _():
        maps = [m * (0.5 + t.randn(B, H, L, 1).abs()) for m in _maps(t, 2, B, H, L)]
        out = t.expect_tensor(t.call(attention_rollout, _clones(maps)), "rollout of scaled maps")
        t.expect_close(out, _reference(maps), "attention_rollout of maps whose rows are scaled", atol=1e-5,
                       args=(maps,), reference="the rollout")

    @t.subcheck("keeps float64", weight=0.5)
    def _():
        maps = _maps(t, 2, B, H, L, dtype=torch.float64)
        out = t.expect_tensor(t.call(attention_rollout, _clones(maps)), "rollout of float64 maps")
        t.expect_dtype(out, torch.float64, "attention_rollout of float64 maps")
