"""Checks for notebook 06 (the Transformer): exercises 06.1, 06.2 and 06.3.

* 06.1 ``layer_norm(x, weight, bias, eps=1e-5)``: over the last axis, biased
  variance, eps inside the square root; equals ``F.layer_norm`` (the reference).
* 06.2 ``class EncoderBlock(nn.Module)``: ``__init__(d_model, num_heads, d_ff,
  dropout=0.0, norm_first=True)``, submodules named as
  ``course_lib.transformer.EncoderBlock``'s (its state_dict is loaded into the
  learner's block), ``forward(x, key_padding_mask=None)`` with True = padding.
  Compared in eval mode, pre-LN and post-LN, with and without a mask; dropout
  must be off in eval and on in training.
* 06.3 ``decoder_self_mask(tgt_lengths, max_len)`` -> bool (B, max_len, max_len),
  True = take part: causal and key not padding. Reference
  ``course_lib.transformer.decoder_self_mask``.

Each misconception below is one wrong-but-plausible implementation; the
catalogue in tests/test_checks_06.py asserts that each gets its hint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..transformer import EncoderBlock as _ReferenceBlock
from ..transformer import decoder_self_mask as _reference_mask
from .framework import CheckContext, Misconception, checker

# =========================================================================== 06.1 layer_norm


def _reference_layer_norm(x, weight, bias, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def _ln(x, weight, bias, eps=1e-5, *, dims=(-1,), unbiased=False, eps_outside=False, sqrt=True):
    """Layer norm done the way a misconception does it."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    if not sqrt:
        return (x - mean) / (var + eps) * weight + bias
    scale = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
    return (x - mean) / scale * weight + bias


LN_UNBIASED = Misconception(
    "unbiased variance",
    "The variance seems to be the unbiased one (divided by D - 1, the default of torch.var and torch.std). "
    "Layer norm divides by D, the number of features: unbiased=False (or correction=0).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, unbiased=True),
)
LN_STD_EPS_OUTSIDE = Misconception(
    "x.std() + eps",
    "This looks like (x - mean) / (x.std() + eps): torch's std is unbiased (it divides by D - 1) and eps "
    "belongs inside the square root, sqrt(var + eps), with the biased variance.",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, unbiased=True, eps_outside=True),
)
LN_EPS_OUTSIDE = Misconception(
    "eps outside the square root",
    "eps seems to be added to the standard deviation, outside the square root. The formula divides by "
    "sqrt(var + eps): it matters for rows whose variance is small.",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, eps_outside=True),
)
LN_NO_EPS = Misconception(
    "no eps",
    "eps seems to be missing: dividing by sqrt(var) alone blows up on rows whose values are (nearly) all "
    "equal. Divide by sqrt(var + eps).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, 0.0),
)
LN_IGNORES_EPS = Misconception(
    "ignores the eps argument",
    "The `eps` argument seems to be ignored (a fixed 1e-5 is used): use the value passed in.",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, 1e-5),
)
LN_NO_SQRT = Misconception(
    "divides by the variance",
    "The result seems divided by the variance (var + eps), not by its square root: layer norm divides by "
    "the standard deviation sqrt(var + eps).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, sqrt=False),
)
LN_FIRST_AXIS = Misconception(
    "normalises over the batch axis",
    "The statistics seem to be taken over the first (batch) axis: that is batch norm. Layer norm takes the "
    "mean and variance of each vector over its features, the LAST axis (dim=-1, keepdim=True).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, dims=(0,)),
)
LN_SECOND_LAST_AXIS = Misconception(
    "normalises over the sequence axis",
    "The statistics seem to be taken over the second-to-last axis (the positions). Layer norm normalises "
    "each vector over its features, the LAST axis (dim=-1, keepdim=True).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, dims=(-2,)),
)
LN_WHOLE_TENSOR = Misconception(
    "statistics of the whole tensor",
    "The mean and variance seem to be taken over the whole tensor. Layer norm takes them over the last axis "
    "only, one mean and one variance per vector (dim=-1, keepdim=True).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, dims=tuple(range(x.dim()))),
)
LN_NO_AFFINE = Misconception(
    "forgets weight and bias",
    "The result seems to be only the normalised x: layer norm then scales by `weight` and shifts by `bias`, "
    "feature by feature.",
    lambda x, w, b, eps=1e-5: _ln(x, torch.ones_like(w), torch.zeros_like(b), eps),
)
LN_NO_BIAS = Misconception(
    "forgets the bias",
    "The result seems to be scaled by `weight` but not shifted by `bias`: add the bias last.",
    lambda x, w, b, eps=1e-5: _ln(x, w, torch.zeros_like(b), eps),
)
LN_NO_WEIGHT = Misconception(
    "forgets the weight",
    "The result seems to be shifted by `bias` but not scaled by `weight`: multiply by the weight, then add "
    "the bias.",
    lambda x, w, b, eps=1e-5: _ln(x, torch.ones_like(w), b, eps),
)
LN_NO_CENTER = Misconception(
    "does not subtract the mean",
    "The mean does not seem to be subtracted: layer norm centres each vector (x - mean) before dividing by "
    "the standard deviation.",
    lambda x, w, b, eps=1e-5: x / (x.var(-1, keepdim=True, unbiased=False) + eps).sqrt() * w + b,
)

LN_MISCONCEPTIONS = [LN_STD_EPS_OUTSIDE, LN_UNBIASED, LN_EPS_OUTSIDE, LN_NO_EPS, LN_IGNORES_EPS, LN_NO_SQRT,
                     LN_FIRST_AXIS, LN_SECOND_LAST_AXIS, LN_WHOLE_TENSOR, LN_NO_AFFINE, LN_NO_BIAS, LN_NO_WEIGHT,
                     LN_NO_CENTER]


def _ln_args(t: CheckContext, *shape, dtype=torch.float32, spread=1.0):
    """x (*shape) with an offset (so that centring matters), weight and bias (D,)."""
    D = shape[-1]
    x = t.randn(*shape, dtype=dtype, scale=spread) + 3.0 * spread * t.randn(*shape[:-1], 1, dtype=dtype)
    return x, 1.0 + 0.5 * t.randn(D, dtype=dtype), 0.5 * t.randn(D, dtype=dtype)


@checker("06.1", misconceptions=LN_MISCONCEPTIONS, mutation_weight=0.5)
def check_layer_norm(t: CheckContext, layer_norm) -> None:
    """Sub-checks of 06.1, cheap to deep; weights are shares of the exercise's points."""
    B, L, D = t.sizes(3, 3, 8)
    args = _ln_args(t, B, L, D)
    what = f"layer_norm(x {B}x{L}x{D}, weight ({D},), bias ({D},))"
    t.opening(layer_norm, args, what=what, shapes=(B, L, D))

    @t.subcheck("equals F.layer_norm over the last axis (several shapes)", weight=1.5, essential=True)
    def _():
        for shape in ((B, L, D), (t.random.randint(2, 5), t.random.randint(3, 9)), (2, 3, L, D)):
            a = _ln_args(t, *shape)
            t.compare(layer_norm, _reference_layer_norm, a, what=f"layer_norm of x {tuple(shape)}",
                      reference_name="F.layer_norm")

    @t.subcheck("uses the eps given, inside the square root (rows of small variance, eps=0.1)", weight=0.75)
    def _():
        small = _ln_args(t, B, L, D, spread=1e-3)  # variance ~1e-6, below the default eps
        t.compare(layer_norm, _reference_layer_norm, small, what="layer_norm of rows of variance about 1e-6",
                  reference_name="F.layer_norm")
        t.compare(layer_norm, _reference_layer_norm, args, kwargs={"eps": 0.1}, what=f"{what[:-1]}, eps=0.1)",
                  reference_name="F.layer_norm")

    @t.subcheck("a constant row gives the bias, not NaN", weight=0.25)
    def _():
        x, w, b = _ln_args(t, B, L, D)
        x[0, 0] = 2.5  # every feature equal: variance 0
        t.compare(layer_norm, _reference_layer_norm, (x, w, b), what="layer_norm with a constant row",
                  finite=True, reference_name="F.layer_norm")

    t.float64_subcheck(layer_norm, _reference_layer_norm, _ln_args(t, B, L, D, dtype=torch.float64),
                       what="layer_norm of float64 inputs", reference_name="F.layer_norm")
    t.gradient_subcheck(layer_norm, _reference_layer_norm, _ln_args(t, B, L, D), what="layer_norm",
                        wrt=(0, 1, 2), arg_names=("x", "weight", "bias"))


# =========================================================================== 06.2 EncoderBlock


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

BLOCK_DTYPE = Misconception(
    "mixes float32 and float64",
    "A float32 tensor meets a float64 one: something in your block is created or cast as float32 (.float(), "
    "torch.tensor(...), torch.zeros(...) without dtype=x.dtype). Keep the input's dtype all the way.",
    None, error=r"same dtype|expected scalar type (Float|Double)|found (Float|Double)",
)

BLOCK_MISCONCEPTIONS = [BLOCK_DTYPE, BLOCK_SWAPPED_LN, BLOCK_NORMED_RESIDUAL, BLOCK_NORMS_SUM, BLOCK_NO_RESIDUAL,
                        BLOCK_NO_ATTN_RESIDUAL, BLOCK_NO_FFN_RESIDUAL, BLOCK_MASK_INVERTED, BLOCK_MASK_IGNORED,
                        BLOCK_NO_ACTIVATION, BLOCK_GELU, BLOCK_NO_SCALE, BLOCK_SCALE_D_MODEL, BLOCK_ONE_HEAD]

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


# =========================================================================== 06.3 decoder_self_mask


def _causal(L):
    return torch.ones(L, L, dtype=torch.bool).tril()  # (L, L)


def _keys(lengths, L):
    return torch.arange(L)[None, :] < torch.as_tensor(lengths)[:, None]  # (B, L) True = real token


MASK_CAUSAL_ONLY = Misconception(
    "causal only",
    "The mask seems to be only causal: padded target positions must not be looked at either. Combine the "
    "causal mask with the padding mask of the keys.",
    lambda lengths, L: _causal(L).expand(len(lengths), L, L).clone(),
)
MASK_CAUSAL_2D = Misconception(
    "one (L, L) mask for the batch",
    "The mask seems to be one causal (max_len, max_len) mask for the whole batch: each sequence has its own "
    "length, hence its own padding, so the mask is (B, max_len, max_len).",
    lambda lengths, L: _causal(L),
)
MASK_PADDING_2D = Misconception(
    "the (B, L) padding mask",
    "The mask seems to be the (B, max_len) padding mask: every query position needs its own row of keys, "
    "(B, max_len, max_len), combining the padding of the keys with causality.",
    lambda lengths, L: _keys(lengths, L),
)
MASK_PADDING_ONLY = Misconception(
    "padding only",
    "The mask seems to hide padding only: a decoder position must not see later positions either (the "
    "tokens it will be trained to predict). Combine it with the causal mask (key j <= query i).",
    lambda lengths, L: _keys(lengths, L)[:, None, :].expand(len(lengths), L, L).clone(),
)
MASK_QUERY_AXIS = Misconception(
    "padding on the query axis",
    "The padding seems to hide padded QUERIES (rows): their rows are then empty, and softmax over no key gives "
    "NaN in F.scaled_dot_product_attention. Padding hides KEYS, the last axis (mask[b, i, j], j the key): "
    "broadcast the padding mask as (B, 1, max_len).",
    lambda lengths, L: _causal(L)[None] & _keys(lengths, L)[:, :, None],
)
MASK_OR = Misconception(
    "OR instead of AND",
    "The two conditions seem combined with OR: a key takes part only if it is not in the future AND not "
    "padding (&, not |).",
    lambda lengths, L: _causal(L)[None] | _keys(lengths, L)[:, None, :],
)
MASK_STRICT = Misconception(
    "the diagonal is masked",
    "The diagonal seems to be masked (key j < query i): a position may look at itself, j <= i "
    "(tril with diagonal=0).",
    lambda lengths, L: torch.ones(L, L, dtype=torch.bool).tril(-1)[None] & _keys(lengths, L)[:, None, :],
)
MASK_ONE_AHEAD = Misconception(
    "one future position visible",
    "Each position seems to see one key too far ahead (j <= i + 1): the causal mask is the lower triangle "
    "including the diagonal, tril with diagonal=0.",
    lambda lengths, L: torch.ones(L, L, dtype=torch.bool).tril(1)[None] & _keys(lengths, L)[:, None, :],
)
MASK_INVERTED = Misconception(
    "inverted (blocked convention)",
    "The mask seems inverted: True marks what is hidden (nn.MultiheadAttention's attn_mask convention). This "
    "exercise uses True = take part, as F.scaled_dot_product_attention does.",
    lambda lengths, L: ~_reference_mask(lengths, L),
)
MASK_PAD_LE = Misconception(
    "<= length",
    "The padding part seems to keep one key too many (position <= length): a sequence of length n fills "
    "positions 0 .. n-1, so key j is real when j < length.",
    lambda lengths, L: _causal(L)[None] & (torch.arange(L)[None, :] <= torch.as_tensor(lengths)[:, None])[:, None],
)
MASK_IGNORES_MAX_LEN = Misconception(
    "ignores max_len",
    "The mask seems to be sized by the longest length instead of by max_len: the batch is padded to max_len "
    "positions, which can be more than max(tgt_lengths).",
    lambda lengths, L: _reference_mask(lengths, int(torch.as_tensor(lengths).max())),
)

MASK_MISCONCEPTIONS = [MASK_CAUSAL_ONLY, MASK_CAUSAL_2D, MASK_PADDING_2D, MASK_PADDING_ONLY, MASK_QUERY_AXIS,
                       MASK_OR, MASK_STRICT, MASK_ONE_AHEAD, MASK_INVERTED, MASK_PAD_LE,
                       MASK_IGNORES_MAX_LEN]

_FLOAT_HINT = ("The mask is a float tensor: return a bool tensor (True = take part), as a comparison or & of "
               "bool masks gives. An additive float mask (0 / -inf) has the opposite meaning of True.")


def _lengths(t: CheckContext, B, L, full=True):
    """B lengths in 1..L, at least one shorter than L (and one equal to L when ``full``)."""
    lengths = [t.random.randint(1, L - 1) for _ in range(B)]
    if full:
        lengths[t.random.randrange(B)] = L
    return torch.tensor(lengths)


@checker("06.3", misconceptions=MASK_MISCONCEPTIONS, mutation_weight=0.25)
def check_decoder_self_mask(t: CheckContext, decoder_self_mask) -> None:
    """Sub-checks of 06.3, cheap to deep; weights are shares of the exercise's points."""
    B, L = t.sizes(2, 2, 7)
    lengths = _lengths(t, B, L)
    what = f"decoder_self_mask(tgt_lengths={lengths.tolist()}, max_len={L})"
    t.opening(decoder_self_mask, (lengths, L), what=what, shapes=(B, L, L), dtype=None,
              shape_titles=["has shape (B, max_len, max_len)"])

    @t.subcheck("is a bool tensor (torch.bool)", weight=0.25, essential=True)
    def _():
        out = t.first["out"]
        if out.dtype != torch.bool:
            t.fail(f"{what} has dtype {out.dtype}, expected torch.bool",
                   _FLOAT_HINT if out.is_floating_point() else
                   "Return a bool tensor (True = take part), as comparisons and & of bool masks give.")

    @t.subcheck("True exactly where key j <= query i and key j is not padding (several batches)", weight=1.5,
                essential=True)
    def _():
        cases = [(lengths, L), (_lengths(t, B + 2, L + 3), L + 3), (torch.tensor([1]), 1),
                 (_lengths(t, 3, 5, full=False), 6)]
        for tl, ml in cases:
            out = t.expect_tensor(t.call(decoder_self_mask, tl.clone(), ml),
                                  f"decoder_self_mask({tl.tolist()}, {ml})")
            t.expect_equal(out, _reference_mask(tl, ml), f"decoder_self_mask(tgt_lengths={tl.tolist()}, "
                           f"max_len={ml})", args=(tl, ml), reference="causal AND key-not-padding")
