"""Checker of exercise 06.2 ``class EncoderBlock(nn.Module)``: built with the curriculum's constructor, the
reference's weights loaded by name, compared pre-LN and post-LN, with and without a padding mask; dropout off
in eval and on in training; gradients; float64. Reference ``course_lib.transformer.EncoderBlock``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...transformer import EncoderBlock as _ReferenceBlock
from ..framework import CheckContext, Misconception, checker


def _attn(ref, h, kpm):
    """The reference's self-attention sublayer (before dropout): (B, L, E)."""
    return ref.self_attn(h, h, h, key_padding_mask=kpm, need_weights=False)[0]


def _attn_by_hand(ref, h, kpm, *, scale="head", heads=True):
    """Self-attention with the reference's projections, done the way a misconception does it."""
    a = ref.self_attn
    B, L, E = h.shape
    H = a.num_heads if heads else 1
    q, k, v = (p(h).reshape(B, L, H, E // H).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))  # (B,H,L,Dh)
    scores = q @ k.transpose(-2, -1)  # (B, H, L, L)
    if scale == "head":
        scores = scores / math.sqrt(E // H)
    elif scale == "model":
        scores = scores / math.sqrt(E)
    if kpm is not None:
        scores = scores.masked_fill(kpm[:, None, None, :], float("-inf"))
    out = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, L, E)  # (B, L, E)
    return a.out_proj(out)


def _attn_query_masked(ref, h, kpm, empty_nan=False):
    """Self-attention with the padding put on the query axis: padded query rows see no key, which gives
    zeros (F.scaled_dot_product_attention) or NaN (a softmax written by hand)."""
    a = ref.self_attn
    B, L, E = h.shape
    H = a.num_heads
    q, k, v = (p(h).reshape(B, L, H, E // H).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
    scores = q @ k.transpose(-2, -1) / math.sqrt(E // H)  # (B, H, L, L)
    if kpm is not None:
        scores = scores.masked_fill(kpm[:, None, :, None], float("-inf"))
    weights = torch.softmax(scores, -1)
    if not empty_nan:
        weights = weights.nan_to_num(0.0)
    return a.out_proj((weights @ v).transpose(1, 2).reshape(B, L, E))


def _parallel(ref, x, kpm):
    if not ref.norm_first:
        return _block(ref, x, kpm)
    return x + _attn(ref, ref.norm1(x), kpm) + _ffn(ref, ref.norm2(x))


def _ffn(ref, h, act=F.relu):
    return ref.ffn.linear2(act(ref.ffn.linear1(h)))


def _block(ref, x, kpm=None, *, pre=None, attn=None, ffn=None, res=(True, True), normed_residual=False,
           norm_sum=False):
    """The encoder block computed with the reference's layers, with one idea changed."""
    pre = ref.norm_first if pre is None else pre
    attn = attn or (lambda h: _attn(ref, h, kpm))
    ffn = ffn or (lambda h: _ffn(ref, h))
    subs = ((ref.norm1, attn), (ref.norm2, ffn))
    for (norm, sub), residual in zip(subs, res):
        if pre:
            h = norm(x)
            base = h if normed_residual else x
            x = (base + sub(h)) if residual else sub(h)
            if norm_sum:
                x = norm(x)
        else:
            x = norm(x + sub(x)) if residual else norm(sub(x))
    return x


def _impl(fn):
    """A module misconception's impl(reference, x, key_padding_mask=None), as compare_module calls it."""
    return lambda ref, x, key_padding_mask=None: fn(ref, x, key_padding_mask)


_WHERE = ("Compare forward() with the two formulas: pre-LN x = x + Sublayer(LN(x)), post-LN x = LN(x + "
          "Sublayer(x)).")
BLOCK_SWAPPED_LN = Misconception(
    "pre-LN and post-LN swapped",
    "The block seems to compute post-LN when norm_first=True, or pre-LN when norm_first=False. norm_first=True "
    "normalises the input of each sublayer and adds the sublayer's output to the un-normalised x; "
    "norm_first=False normalises the residual sum. " + _WHERE,
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, pre=not ref.norm_first)),
)
BLOCK_NORMED_RESIDUAL = Misconception(
    "residual from the normalised x",
    "In pre-LN the residual seems to start from the normalised x (h = LN(x); x = h + Sublayer(h)). The "
    "residual path must carry x itself, un-normalised: x = x + Sublayer(LN(x)).",
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, normed_residual=True)),
)
BLOCK_NORMS_SUM = Misconception(
    "pre-LN also normalises the sum",
    "In pre-LN the residual sum seems to be normalised again (x = LN(x + Sublayer(LN(x)))). Pre-LN leaves the "
    "sum alone: the residual path stays an identity. " + _WHERE,
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, norm_sum=True)),
)
BLOCK_NO_ATTN_RESIDUAL = Misconception(
    "attention without residual",
    "The self-attention sublayer seems to have no residual connection: its output replaces x instead of "
    "being added to it. " + _WHERE,
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, res=(False, True))),
)
BLOCK_NO_FFN_RESIDUAL = Misconception(
    "feed-forward without residual",
    "The feed-forward sublayer seems to have no residual connection: its output replaces x instead of being "
    "added to it. " + _WHERE,
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, res=(True, False))),
)
BLOCK_NO_RESIDUAL = Misconception(
    "no residual at all",
    "Neither sublayer seems to have its residual connection: each sublayer's output must be added to its "
    "input x. " + _WHERE,
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, res=(False, False))),
)
BLOCK_MASK_INVERTED = Misconception(
    "key_padding_mask inverted",
    "key_padding_mask seems to be used the other way round: here True marks PADDING (nn.MultiheadAttention's "
    "convention), keys to mask out. If you pass it to F.scaled_dot_product_attention, whose bool mask means "
    "True = take part, invert it first.",
    _impl(lambda ref, x, kpm: _block(ref, x, None if kpm is None else ~kpm)),
)
BLOCK_MASK_IGNORED = Misconception(
    "key_padding_mask ignored",
    "The output seems not to depend on key_padding_mask: padded keys must get no attention. Pass the mask "
    "on to the attention (keys on the last axis, broadcast over heads and queries).",
    _impl(lambda ref, x, kpm: _block(ref, x, None)),
)
BLOCK_NO_ACTIVATION = Misconception(
    "feed-forward without activation",
    "The feed-forward network seems to have no activation between its two linear layers: without the ReLU "
    "it is one linear map. Use linear2(relu(linear1(h))).",
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, ffn=lambda h: _ffn(ref, h, act=lambda z: z))),
)
BLOCK_GELU = Misconception(
    "GELU instead of ReLU",
    "The feed-forward network seems to use GELU: this block uses ReLU, as Vaswani et al. and torch's "
    "TransformerEncoderLayer do by default.",
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, ffn=lambda h: _ffn(ref, h, act=F.gelu))),
)
BLOCK_NO_SCALE = Misconception(
    "scores not scaled",
    "The attention scores seem not to be divided by sqrt(d_head): softmax(q k^T / sqrt(d_model / num_heads)).",
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, attn=lambda h: _attn_by_hand(ref, h, kpm, scale=None))),
)
BLOCK_SCALE_D_MODEL = Misconception(
    "scaled by sqrt(d_model)",
    "The attention scores seem to be divided by sqrt(d_model): each head's scores are divided by the square "
    "root of the head's size, d_model / num_heads.",
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, attn=lambda h: _attn_by_hand(ref, h, kpm, scale="model"))),
)
BLOCK_ONE_HEAD = Misconception(
    "heads not split",
    "The attention seems to use one head of size d_model: split q, k and v into num_heads heads of size "
    "d_model / num_heads (notebook 04), attend in each, then merge them before out_proj.",
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, attn=lambda h: _attn_by_hand(ref, h, kpm, scale="model",
                                                                             heads=False))),
)

_QUERIES_HINT = ("The padding seems to be applied to the queries (rows of the scores) instead of the keys: a padded "
                 "query then sees no key, and real queries still attend to padding. Broadcast the mask as (B, 1, 1, "
                 "L): keys are the last axis of the scores.")
BLOCK_MASK_ON_QUERIES = Misconception(
    "key_padding_mask on the query axis", _QUERIES_HINT,
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, attn=lambda h: _attn_query_masked(ref, h, kpm))),
)
BLOCK_MASK_ON_QUERIES_NAN = Misconception(
    "key_padding_mask on the query axis (softmax by hand)", _QUERIES_HINT,
    _impl(lambda ref, x, kpm: _block(ref, x, kpm, attn=lambda h: _attn_query_masked(ref, h, kpm, empty_nan=True))),
)
BLOCK_PARALLEL = Misconception(
    "sublayers in parallel",
    "Both sublayers seem to read the block's input (x + attn(LN1(x)) + ffn(LN2(x))): they run one after the "
    "other, and the feed-forward sublayer reads x after the attention's residual sum.",
    _impl(_parallel),
)
BLOCK_DTYPE = Misconception(
    "mixes float32 and float64",
    "A float32 tensor meets a float64 one: something in your block is created or cast as float32 (.float(), "
    "torch.tensor(...), torch.zeros(...) without dtype=x.dtype). Keep the input's dtype all the way.",
    None, error=r"same dtype|expected scalar type (Float|Double)|found (Float|Double)",
)

BLOCK_MISCONCEPTIONS = [BLOCK_DTYPE, BLOCK_SWAPPED_LN, BLOCK_NORMED_RESIDUAL, BLOCK_NORMS_SUM, BLOCK_NO_RESIDUAL,
                        BLOCK_NO_ATTN_RESIDUAL, BLOCK_NO_FFN_RESIDUAL, BLOCK_MASK_INVERTED, BLOCK_MASK_IGNORED,
                        BLOCK_NO_ACTIVATION, BLOCK_GELU, BLOCK_NO_SCALE, BLOCK_SCALE_D_MODEL, BLOCK_ONE_HEAD,
                        BLOCK_MASK_ON_QUERIES, BLOCK_MASK_ON_QUERIES_NAN, BLOCK_PARALLEL]

DROPOUT_AT_EVAL_HINT = ("In eval mode the block must be deterministic: dropout is off after .eval(). Use "
                        "nn.Dropout modules (they follow self.training), or pass training=self.training / "
                        "dropout_p=self.dropout_p if self.training else 0.0 to functional calls.")
DROPOUT_IGNORED_HINT = ("In training mode with dropout > 0 the output never changes: the `dropout` argument seems "
                        "unused. Apply dropout (nn.Dropout(dropout)) to each sublayer's output before the "
                        "residual sum.")


def _reference_block(t: CheckContext, d, h, f, dropout=0.0, norm_first=True):
    with torch.random.fork_rng():
        torch.manual_seed(t.seed)
        block = _ReferenceBlock(d, h, f, dropout=dropout, norm_first=norm_first)
        for p in block.parameters():  # random norms and biases too, so that a swapped one shows
            p.data.add_(0.2 * torch.randn_like(p))
    return block.eval()


def _padding(t: CheckContext, B, L):
    """key_padding_mask (B, L), True = padding; every row has a real token and a padded one."""
    lengths = torch.tensor([t.random.randint(1, L - 1) for _ in range(B)])
    return torch.arange(L)[None, :] >= lengths[:, None]


def _load(t: CheckContext, module, reference, what):
    state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    t.run(lambda: module.load_state_dict(state), f"{what}.load_state_dict(the reference's weights)")


@checker("06.2", misconceptions=BLOCK_MISCONCEPTIONS, mutation_weight=0.25,
         match_tolerances=((1e-4, 1e-6), (1e-3, 1e-4)))
def check_encoder_block(t: CheckContext, EncoderBlock) -> None:
    """Sub-checks of 06.2, cheap to deep; weights are shares of the exercise's points."""
    d, h = t.random.choice(((8, 2), (12, 3), (16, 4), (12, 2)))
    f = t.random.choice((16, 24, 32))
    B, L = t.random.randint(2, 3), t.random.randint(4, 7)
    pre = _reference_block(t, d, h, f)
    what = f"EncoderBlock({d}, {h}, {f}, dropout=0.0, norm_first=True)"
    module = t.build_module(EncoderBlock, (d, h, f), {"dropout": 0.0, "norm_first": True}, what=what)
    t.expect_same_submodules(module, pre, what=what, reference_name="course_lib.transformer.EncoderBlock")
    x, mask = t.randn(B, L, d), _padding(t, B, L)
    cases = [((x,), {}), ((x, mask), {}), ((t.randn(B + 1, L + 1, d),), {"key_padding_mask": _padding(t, B + 1, L + 1)})]
    t.compare_module(module, pre, cases, what=what, weight=1.5,
                     title="pre-LN (norm_first=True) equals the reference, with and without key_padding_mask")

    post = _reference_block(t, d, h, f, norm_first=False)
    what_post = f"EncoderBlock({d}, {h}, {f}, dropout=0.0, norm_first=False)"
    module_post = t.build_module(EncoderBlock, (d, h, f), {"dropout": 0.0, "norm_first": False}, what=what_post,
                                 weight=0.1)

    @t.subcheck("the reference's weights load into the post-LN block", weight=0.1, essential=True)
    def _():
        _load(t, module_post, post, what_post)
        t.run(lambda: module_post.eval(), f"{what_post}.eval()")

    t.compare_module(module_post, post, cases[:2], what=what_post, weight=1.0,
                     title="post-LN (norm_first=False) equals the reference, with and without key_padding_mask")

    what_drop = f"EncoderBlock({d}, {h}, {f}, dropout=0.3)"
    drop = t.build_module(EncoderBlock, (d, h, f), {"dropout": 0.3, "norm_first": True}, what=what_drop,
                          weight=0.1)

    @t.subcheck("dropout is off in eval mode and on in training mode", weight=0.5)
    def _():
        _load(t, drop, pre, what_drop)
        t.run(lambda: drop.eval(), f"{what_drop}.eval()")
        with torch.no_grad():
            expected = pre(x, mask)
        outs = [t.expect_tensor(t.call(drop, x.clone(), mask.clone()), f"{what_drop} in eval mode") for _ in "ab"]
        if not torch.equal(outs[0], outs[1]):
            t.fail(f"{what_drop} in eval mode gave two different outputs for the same input", DROPOUT_AT_EVAL_HINT)
        t.expect_close(outs[0], expected, f"{what_drop} in eval mode", rtol=1e-4, atol=1e-5,
                       reference="the reference module", args=(pre, x, mask), hint=DROPOUT_AT_EVAL_HINT)
        t.run(lambda: drop.train(), f"{what_drop}.train()")
        with torch.random.fork_rng():
            torch.manual_seed(t.seed)
            trained = [t.expect_tensor(t.call(drop, x.clone(), mask.clone()), f"{what_drop} in training mode")
                       for _ in "ab"]
        if torch.equal(trained[0], trained[1]) or torch.allclose(trained[0], outs[0], rtol=1e-4, atol=1e-5):
            t.fail(f"{what_drop} in training mode gave the same output as in eval mode", DROPOUT_IGNORED_HINT)

    t.module_gradients(module, pre, (t.randn(B, L, d),), {"key_padding_mask": mask}, what=what)
    t.module_float64(module, pre, (t.randn(B, L, d),), {"key_padding_mask": mask}, what=what)


