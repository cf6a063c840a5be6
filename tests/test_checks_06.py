"""Catalogue for exercises 06.1 (layer_norm), 06.2 (EncoderBlock) and 06.3 (decoder_self_mask): wrong answers,
each rejected with its hint, and valid variants, each accepted with full points. The wrong answers are written
as a learner would write them, not with the checker's own helpers."""

import math

import pytest
import torch
import torch.nn.functional as F
from catalogue import assert_full_points, assert_rejected, not_implemented
from torch import nn

from course_lib.checks import run_check

SEEDS = (0, 1)


# =========================================================================== 06.1 layer_norm


def ln_unbiased(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias


def ln_std_plus_eps(x, weight, bias, eps=1e-5):
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + eps) * weight + bias


def ln_eps_outside(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    std = ((x - mean) ** 2).mean(-1, keepdim=True).sqrt()
    return (x - mean) / (std + eps) * weight + bias


def ln_no_eps(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / x.var(-1, keepdim=True, unbiased=False).sqrt() * weight + bias


def ln_fixed_eps(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * weight + bias


def ln_batch_axis(x, weight, bias, eps=1e-5):
    mean = x.mean(0, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(0, keepdim=True, unbiased=False) + eps) * weight + bias


def ln_whole_tensor(x, weight, bias, eps=1e-5):
    return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) * weight + bias


def ln_no_affine(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps)


def ln_no_bias(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return weight * (x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps)


def ln_divides_by_var(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / (x.var(-1, keepdim=True, unbiased=False) + eps) * weight + bias


def ln_no_centring(x, weight, bias, eps=1e-5):
    return x / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * weight + bias


def ln_affine_first(x, weight, bias, eps=1e-5):
    x = x * weight + bias
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps)


LN_WRONG = {
    "unbiased variance": (ln_unbiased, "unbiased one"),
    "x.std() + eps": (ln_std_plus_eps, "unbiased"),  # either hint: the two are close on most rows
    "eps outside the sqrt": (ln_eps_outside, "outside the square root"),
    "no eps": (ln_no_eps, "eps seems to be missing"),
    "ignores the eps argument": (ln_fixed_eps, "`eps` argument seems to be ignored"),
    "over the batch axis": (ln_batch_axis, "that is batch norm"),
    "statistics of the whole tensor": (ln_whole_tensor, "over the whole tensor"),
    "forgets weight and bias": (ln_no_affine, "only the normalised x"),
    "forgets the bias": (ln_no_bias, "not shifted by `bias`"),
    "divides by the variance": (ln_divides_by_var, "divided by the variance"),
    "does not centre": (ln_no_centring, "mean does not seem to be subtracted"),
    "weight and bias first": (ln_affine_first, "applied before the normalisation"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(LN_WRONG))
def test_layer_norm_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = LN_WRONG[name]
    assert_rejected("06.1", fn, hint, seed, name)


def ln_in_place(x, weight, bias, eps=1e-5):
    x -= x.mean(-1, keepdim=True)  # mutates the caller's tensor
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight + bias


def test_layer_norm_mutating_x_loses_points_and_says_so():
    result = run_check("06.1", ln_in_place, seed=0)
    assert not result.passed and result.points < result.max_points
    assert any("`x`" in m and "place" in m for m in result.messages), result.messages


def ln_by_hand(x, weight, bias, eps=1e-5):
    D = x.shape[-1]
    mean = x.sum(-1, keepdim=True) / D
    centred = x - mean
    var = (centred * centred).sum(-1, keepdim=True) / D
    return centred * torch.rsqrt(var + eps) * weight + bias


def ln_var_mean(x, weight, bias, eps=1e-5):
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return torch.addcmul(bias, (x - mean) / (var + eps).sqrt(), weight)


def ln_einsum_float64(x, weight, bias, eps=1e-5):
    x64 = x.double()
    mean = torch.einsum("...d->...", x64)[..., None] / x.shape[-1]
    var = torch.einsum("...d,...d->...", x64 - mean, x64 - mean)[..., None] / x.shape[-1]
    return ((x64 - mean) / (var + eps).sqrt()).to(x.dtype) * weight + bias


LN_VALID = [ln_by_hand, ln_var_mean, ln_einsum_float64]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", LN_VALID)
def test_layer_norm_valid_variants_pass(fn, seed):
    assert_full_points("06.1", fn, seed, fn.__name__)


def ln_textbook(x, weight, bias, eps=1e-5):  # the solution's formula
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


# Seeds where correct answers lost points while the reference was torch's float32 layer norm (its backward is
# off by up to 9e-5 of the largest gradient; a learner's plain formula by 1e-5): one of them cost the solution
# notebook 0.35 point under the grader in CI. The reference is now computed in float64.
@pytest.mark.parametrize("seed", (34, 68, 71, 105))
@pytest.mark.parametrize("fn", [ln_textbook, *LN_VALID])
def test_layer_norm_float32_rounding_costs_no_points(fn, seed):
    assert_full_points("06.1", fn, seed, fn.__name__)


def test_layer_norm_reference_and_pristine():
    assert_full_points("06.1", lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], w, b, eps), 2, "F.layer_norm")
    result = run_check("06.1", not_implemented, seed=0)
    assert not result.passed and result.points == 0 and "not implemented" in " ".join(result.messages)


# =========================================================================== 06.2 EncoderBlock


class Attention(nn.Module):
    """A learner's multi-head self-attention with the contract's names (q_proj, k_proj, v_proj, out_proj)."""

    def __init__(self, d_model, num_heads, dropout=0.0, scale="head", split=True):
        super().__init__()
        self.num_heads, self.dropout, self.scale, self.split = num_heads, dropout, scale, split
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x, keep=None):  # keep: (B, S) True = real key
        B, L, E = x.shape
        H = self.num_heads if self.split else 1
        q, k, v = (p(x).view(B, L, H, E // H).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-2, -1)
        if self.scale == "head":
            scores = scores / math.sqrt(E // H)
        elif self.scale == "model":
            scores = scores / math.sqrt(E)
        if keep is not None:
            scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        weights = F.dropout(torch.softmax(scores, dim=-1), self.dropout, self.training)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(B, L, E))


class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff, activation=F.relu):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.activation = activation

    def forward(self, x):
        return self.linear2(self.activation(self.linear1(x)))


class Block(nn.Module):
    """A correct learner's block; the wrong answers below change one thing."""

    activation = staticmethod(F.relu)
    scale, split = "head", True

    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=True):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = Attention(d_model, num_heads, dropout, self.scale, self.split)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, self.activation)
        self.dropout = nn.Dropout(dropout)

    def attend(self, h, key_padding_mask):
        return self.dropout(self.self_attn(h, None if key_padding_mask is None else ~key_padding_mask))

    def feed(self, h):
        return self.dropout(self.ffn(h))

    def forward(self, x, key_padding_mask=None):
        if self.norm_first:
            x = x + self.attend(self.norm1(x), key_padding_mask)
            return x + self.feed(self.norm2(x))
        x = self.norm1(x + self.attend(x, key_padding_mask))
        return self.norm2(x + self.feed(x))


class AlwaysPostLN(Block):
    def forward(self, x, key_padding_mask=None):
        x = self.norm1(x + self.attend(x, key_padding_mask))
        return self.norm2(x + self.feed(x))


class AlwaysPreLN(Block):
    def forward(self, x, key_padding_mask=None):
        x = x + self.attend(self.norm1(x), key_padding_mask)
        return x + self.feed(self.norm2(x))


class ResidualAfterNorm(Block):
    def forward(self, x, key_padding_mask=None):
        if not self.norm_first:
            return super().forward(x, key_padding_mask)
        x = self.norm1(x)
        x = x + self.attend(x, key_padding_mask)
        x = self.norm2(x)
        return x + self.feed(x)


class PreLNNormsTheSum(Block):
    def forward(self, x, key_padding_mask=None):
        if not self.norm_first:
            return super().forward(x, key_padding_mask)
        x = self.norm1(x + self.attend(self.norm1(x), key_padding_mask))
        return self.norm2(x + self.feed(self.norm2(x)))


class NoResidual(Block):
    def forward(self, x, key_padding_mask=None):
        if self.norm_first:
            x = self.attend(self.norm1(x), key_padding_mask)
            return self.feed(self.norm2(x))
        x = self.norm1(self.attend(x, key_padding_mask))
        return self.norm2(self.feed(x))


class NoFeedForwardResidual(Block):
    def forward(self, x, key_padding_mask=None):
        if self.norm_first:
            x = x + self.attend(self.norm1(x), key_padding_mask)
            return self.feed(self.norm2(x))
        x = self.norm1(x + self.attend(x, key_padding_mask))
        return self.norm2(self.feed(x))


class MaskInverted(Block):
    def attend(self, h, key_padding_mask):
        return self.dropout(self.self_attn(h, key_padding_mask))  # True = padding used as True = keep


class MaskIgnored(Block):
    def attend(self, h, key_padding_mask):
        return self.dropout(self.self_attn(h))


class MaskOnQueries(Block):
    def attend(self, h, key_padding_mask):
        a, H = self.self_attn, self.self_attn.num_heads
        B, L, E = h.shape
        q, k, v = (p(h).view(B, L, H, E // H).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        keep = None if key_padding_mask is None else ~key_padding_mask[:, None, :, None]  # (B, 1, L, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.dropout(a.out_proj(out.transpose(1, 2).reshape(B, L, E)))


class MaskOnQueriesByHand(Block):
    def attend(self, h, key_padding_mask):
        a, H = self.self_attn, self.self_attn.num_heads
        B, L, E = h.shape
        q, k, v = (p(h).view(B, L, H, E // H).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        scores = q @ k.transpose(-2, -1) / math.sqrt(E // H)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, :, None], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return self.dropout(a.out_proj(out.transpose(1, 2).reshape(B, L, E)))


class ParallelSublayers(Block):
    def forward(self, x, key_padding_mask=None):
        if not self.norm_first:
            return super().forward(x, key_padding_mask)
        return x + self.attend(self.norm1(x), key_padding_mask) + self.feed(self.norm2(x))


class NoActivation(Block):
    activation = staticmethod(lambda z: z)


class Gelu(Block):
    activation = staticmethod(F.gelu)


class NoScale(Block):
    scale = None


class OneHead(Block):
    scale, split = "model", False


class DropoutAtEval(Block):
    def feed(self, h):
        return F.dropout(self.ffn(h), self.dropout.p, training=True)


class DropoutIgnored(Block):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=True):
        super().__init__(d_model, num_heads, d_ff, 0.0, norm_first)


class SequentialFeedForward(Block):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=True):
        super().__init__(d_model, num_heads, d_ff, dropout, norm_first)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))


class NotAModule:
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=True):
        self.d_model = d_model


class CastsToFloat32(Block):
    def forward(self, x, key_padding_mask=None):
        return super().forward(x, key_padding_mask).float()


class Float32Weights(Block):
    def attend(self, h, key_padding_mask):
        a, H = self.self_attn, self.self_attn.num_heads
        B, L, E = h.shape
        q, k, v = (p(h).view(B, L, H, E // H).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        scores = q @ k.transpose(-2, -1) / math.sqrt(E // H)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1)  # "for stability", float32 whatever the input
        return self.dropout(a.out_proj((weights @ v).transpose(1, 2).reshape(B, L, E)))


BLOCK_WRONG = {
    "post-LN when norm_first=True": (AlwaysPostLN, "post-LN when norm_first=True"),
    "pre-LN when norm_first=False": (AlwaysPreLN, "pre-LN when norm_first=False"),
    "residual added after the norm": (ResidualAfterNorm, "residual seems to start from the normalised x"),
    "pre-LN normalises the sum": (PreLNNormsTheSum, "normalised again"),
    "no residual": (NoResidual, "Neither sublayer"),
    "feed-forward without residual": (NoFeedForwardResidual, "feed-forward sublayer seems to have no residual"),
    "key_padding_mask inverted": (MaskInverted, "key_padding_mask seems to be used the other way round"),
    "key_padding_mask ignored": (MaskIgnored, "not to depend on key_padding_mask"),
    "key_padding_mask on the queries": (MaskOnQueries, "applied to the queries (rows of the scores)"),
    "key_padding_mask on the queries, softmax by hand": (MaskOnQueriesByHand, "applied to the queries (rows"),
    "sublayers in parallel": (ParallelSublayers, "Both sublayers seem to read the block's input"),
    "feed-forward without activation": (NoActivation, "no activation between its two linear layers"),
    "GELU instead of ReLU": (Gelu, "seems to use GELU"),
    "scores not scaled": (NoScale, "not to be divided by sqrt(d_head)"),
    "one head": (OneHead, "one head of size d_model"),
    "dropout applied at eval": (DropoutAtEval, "dropout is off after .eval()"),
    "dropout argument ignored": (DropoutIgnored, "argument seems unused"),
    "feed-forward as nn.Sequential (names differ)": (SequentialFeedForward, "name each submodule exactly as the contract"),
    "not an nn.Module": (NotAModule, "subclass torch.nn.Module"),
    "casts to float32": (CastsToFloat32, "not float64 for float64 inputs"),
    "attention weights cast to float32": (Float32Weights, "A float32 tensor meets a float64 one"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(BLOCK_WRONG))
def test_encoder_block_wrong_answer_is_rejected_with_its_hint(name, seed):
    cls, hint = BLOCK_WRONG[name]
    assert_rejected("06.2", cls, hint, seed, name)


def test_encoder_block_hint_names_missing_and_extra_submodules():
    result = run_check("06.2", SequentialFeedForward, seed=0)
    text = " ".join(result.messages)
    assert "missing `ffn.linear1`, `ffn.linear2`" in text and "not in the reference `ffn.0`, `ffn.2`" in text, text


class SdpaBlock(nn.Module):
    """Valid: attention with F.scaled_dot_product_attention (bool mask True = take part), dropout as functional
    calls that follow self.training, ReLU as a module in the feed-forward."""

    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=True):
        super().__init__()
        self.h, self.p, self.norm_first = num_heads, dropout, norm_first
        self.self_attn = nn.Module()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, name, nn.Linear(d_model, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn = nn.Module()
        self.ffn.linear1, self.ffn.relu, self.ffn.linear2 = nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model)

    def sa(self, x, key_padding_mask):
        a = self.self_attn
        q, k, v = (p(x).unflatten(-1, (self.h, -1)).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        keep = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=self.p if self.training else 0.0)
        return F.dropout(a.out_proj(out.transpose(1, 2).flatten(2)), self.p, self.training)

    def ff(self, x):
        f = self.ffn
        return F.dropout(f.linear2(f.relu(f.linear1(x))), self.p, self.training)

    def forward(self, x, key_padding_mask=None):
        if self.norm_first:
            x = x + self.sa(self.norm1(x), key_padding_mask)
            return x + self.ff(self.norm2(x))
        x = self.norm1(x + self.sa(x, key_padding_mask))
        return self.norm2(x + self.ff(x))


class ManualNormEinsumBlock(Block):
    """Valid: LayerNorm by hand with the norms' parameters, attention scores with einsum and an additive mask."""

    def _norm(self, norm, x):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * norm.weight + norm.bias

    def attend(self, h, key_padding_mask):
        a, H = self.self_attn, self.self_attn.num_heads
        B, L, E = h.shape
        q, k, v = (p(h).reshape(B, L, H, E // H) for p in (a.q_proj, a.k_proj, a.v_proj))
        scores = torch.einsum("bihd,bjhd->bhij", q, k) / (E // H) ** 0.5
        if key_padding_mask is not None:
            scores = scores + torch.zeros_like(scores).masked_fill(key_padding_mask[:, None, None, :], -math.inf)
        out = torch.einsum("bhij,bjhd->bihd", torch.softmax(scores, -1), v).reshape(B, L, E)
        return self.dropout(a.out_proj(out))

    def forward(self, x, key_padding_mask=None):
        if self.norm_first:
            x = x + self.attend(self._norm(self.norm1, x), key_padding_mask)
            return x + self.feed(self._norm(self.norm2, x))
        x = self._norm(self.norm1, x + self.attend(x, key_padding_mask))
        return self._norm(self.norm2, x + self.feed(x))


class PerHeadLoopBlock(Block):
    """Valid: one head at a time in a loop, the padded keys dropped by indexing; dropout inside the FFN."""

    def attend(self, h, key_padding_mask):
        a, H = self.self_attn, self.self_attn.num_heads
        B, L, E = h.shape
        Dh = E // H
        q, k, v = a.q_proj(h), a.k_proj(h), a.v_proj(h)
        rows = []
        for b in range(B):
            real = torch.ones(L, dtype=torch.bool) if key_padding_mask is None else ~key_padding_mask[b]
            heads = []
            for i in range(H):
                s = slice(i * Dh, (i + 1) * Dh)
                w = torch.softmax(q[b, :, s] @ k[b][real][:, s].T / math.sqrt(Dh), -1)
                heads.append(w @ v[b][real][:, s])
            rows.append(torch.cat(heads, -1))
        return self.dropout(a.out_proj(torch.stack(rows)))

    def feed(self, h):
        return self.ffn.linear2(self.dropout(F.relu(self.ffn.linear1(h))))


BLOCK_VALID = [Block, SdpaBlock, ManualNormEinsumBlock, PerHeadLoopBlock]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cls", BLOCK_VALID)
def test_encoder_block_valid_variants_pass(cls, seed):
    assert_full_points("06.2", cls, seed, cls.__name__)


def test_encoder_block_reference_passes_and_pristine_does_not():
    from course_lib.transformer import EncoderBlock
    assert_full_points("06.2", EncoderBlock, 2, "course_lib's EncoderBlock")

    class Pristine(nn.Module):
        def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=True):
            super().__init__()
            raise NotImplementedError()

    result = run_check("06.2", Pristine, seed=0)
    assert not result.passed and result.points == 0 and "not implemented" in " ".join(result.messages)


class MutatesInput(Block):
    def forward(self, x, key_padding_mask=None):
        out = super().forward(x, key_padding_mask)
        x.zero_()
        return out


def test_encoder_block_mutating_x_loses_points():
    result = run_check("06.2", MutatesInput, seed=0)
    assert not result.passed and result.points < result.max_points
    assert any("place" in m for m in result.messages), result.messages


# =========================================================================== 06.3 decoder_self_mask


def _keys(tgt_lengths, max_len):
    return torch.arange(max_len)[None, :] < tgt_lengths[:, None]  # (B, max_len)


def _tril(max_len, diagonal=0):
    return torch.tril(torch.ones(max_len, max_len, dtype=torch.bool), diagonal)


def mask_causal_only(tgt_lengths, max_len):
    return _tril(max_len).repeat(len(tgt_lengths), 1, 1)


def mask_causal_2d(tgt_lengths, max_len):
    return _tril(max_len)


def mask_padding_2d(tgt_lengths, max_len):
    return _keys(tgt_lengths, max_len)


def mask_padding_only(tgt_lengths, max_len):
    return _keys(tgt_lengths, max_len).unsqueeze(1).repeat(1, max_len, 1)


def mask_query_axis(tgt_lengths, max_len):
    return _tril(max_len) & _keys(tgt_lengths, max_len).unsqueeze(-1)


def mask_both_axes(tgt_lengths, max_len):
    keys = _keys(tgt_lengths, max_len)
    return _tril(max_len) & keys.unsqueeze(-1) & keys.unsqueeze(1)


def mask_or(tgt_lengths, max_len):
    return _tril(max_len) | _keys(tgt_lengths, max_len).unsqueeze(1)


def mask_strict(tgt_lengths, max_len):
    return _tril(max_len, -1) & _keys(tgt_lengths, max_len).unsqueeze(1)


def mask_one_ahead(tgt_lengths, max_len):
    return _tril(max_len, 1) & _keys(tgt_lengths, max_len).unsqueeze(1)


def mask_inverted(tgt_lengths, max_len):
    return ~(_tril(max_len) & _keys(tgt_lengths, max_len).unsqueeze(1))


def mask_float(tgt_lengths, max_len):
    keep = _tril(max_len) & _keys(tgt_lengths, max_len).unsqueeze(1)
    return torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))


def mask_le(tgt_lengths, max_len):
    return _tril(max_len) & (torch.arange(max_len)[None, :] <= tgt_lengths[:, None]).unsqueeze(1)


def mask_longest(tgt_lengths, max_len):
    L = int(tgt_lengths.max())
    return _tril(L) & _keys(tgt_lengths, L).unsqueeze(1)


def mask_transposed(tgt_lengths, max_len):
    return (_tril(max_len) & _keys(tgt_lengths, max_len).unsqueeze(1)).transpose(1, 2)


MASK_WRONG = {
    "causal only": (mask_causal_only, "only causal"),
    "one (L, L) mask": (mask_causal_2d, "one causal (max_len, max_len) mask for the whole batch"),
    "the (B, L) padding mask": (mask_padding_2d, "the (B, max_len) padding mask"),
    "padding only": (mask_padding_only, "hide padding only"),
    "padding on the query axis": (mask_query_axis, "hide padded QUERIES (rows)"),
    "padding on both axes": (mask_both_axes, "hide padded QUERIES (rows)"),
    "OR instead of AND": (mask_or, "combined with OR"),
    "tril(-1)": (mask_strict, "diagonal seems to be masked"),
    "tril(1)": (mask_one_ahead, "one key too far ahead"),
    "inverted": (mask_inverted, "mask seems inverted"),
    "float additive mask": (mask_float, "float tensor"),
    "<= length": (mask_le, "one key too many"),
    "ignores max_len": (mask_longest, "sized by the longest length"),
    "transposed": (mask_transposed, "mask seems transposed"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(MASK_WRONG))
def test_decoder_mask_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = MASK_WRONG[name]
    assert_rejected("06.3", fn, hint, seed, name)


def mask_loops(tgt_lengths, max_len):
    out = torch.zeros(len(tgt_lengths), max_len, max_len, dtype=torch.bool)
    for b, n in enumerate(tgt_lengths.tolist()):
        for i in range(max_len):
            for j in range(min(i, n - 1) + 1):
                out[b, i, j] = True
    return out


def mask_comparisons(tgt_lengths, max_len):
    i = torch.arange(max_len).view(1, -1, 1)
    j = torch.arange(max_len).view(1, 1, -1)
    return (j <= i) & (j < tgt_lengths.view(-1, 1, 1))


def mask_blocked_then_inverted(tgt_lengths, max_len):
    future = torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), diagonal=1)
    padded = torch.arange(max_len).expand(len(tgt_lengths), max_len) >= tgt_lengths.unsqueeze(1)
    return ~(future.unsqueeze(0) | padded.unsqueeze(1))


MASK_VALID = [mask_loops, mask_comparisons, mask_blocked_then_inverted]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", MASK_VALID)
def test_decoder_mask_valid_variants_pass(fn, seed):
    assert_full_points("06.3", fn, seed, fn.__name__)


def test_decoder_mask_reference_and_hard_coded_answer():
    from course_lib.transformer import decoder_self_mask
    assert_full_points("06.3", decoder_self_mask, 2, "course_lib's decoder_self_mask")
    cached = {}

    def hard_coded(tgt_lengths, max_len):  # the answer for the first call, whatever the arguments
        if "out" not in cached:
            cached["out"] = mask_comparisons(tgt_lengths, max_len)
        return cached["out"].clone()

    result = run_check("06.3", hard_coded, seed=0)
    assert not result.passed and result.points < result.max_points


# =========================================================================== the reference, course_lib side


def test_decoder_self_mask_composes_causal_and_key_padding():
    from course_lib.masks import causal_mask, padding_mask
    from course_lib.transformer import decoder_self_mask
    lengths = torch.tensor([2, 5, 3])
    mask = decoder_self_mask(lengths, 6)
    assert mask.shape == (3, 6, 6) and mask.dtype == torch.bool
    assert torch.equal(mask, causal_mask(6)[None] & padding_mask(lengths, 6)[:, None, :])
    assert mask.any(-1).all()  # every query, padded or not, sees key 0: no NaN row
    assert torch.equal(decoder_self_mask([1, 0], 2), torch.tensor([[[True, False], [True, False]],
                                                                  [[False, False], [False, False]]]))
    assert decoder_self_mask([0], 0).shape == (1, 0, 0)
    with pytest.raises(ValueError, match="max_len must be >= max"):
        decoder_self_mask(torch.tensor([5]), 3)
    with pytest.raises(TypeError, match="max_len must be an int"):
        decoder_self_mask(torch.tensor([2]), 2.0)
