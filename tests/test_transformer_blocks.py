"""EncoderBlock / DecoderBlock: equal to torch's Transformer layers with copied weights, masks, errors."""

import pytest
import torch
from torch import nn

from course_lib.transformer import DecoderBlock, EncoderBlock, FeedForward

TOL = dict(atol=1e-5, rtol=1e-5)
B, L, S, E, H, F_ = 3, 7, 5, 16, 4, 32


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def padding(lengths, total):
    """bool (B, total), True = padding (nn.MultiheadAttention's convention)."""
    return torch.arange(total)[None, :] >= torch.tensor(lengths)[:, None]


def torch_encoder(norm_first, activation="relu", seed=0):
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(E, H, F_, dropout=0.0, activation=activation, batch_first=True,
                                       norm_first=norm_first)
    with torch.no_grad():  # non-trivial LayerNorm parameters, so a swapped norm would show
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("train_mode", [False, True])
def test_encoder_block_equals_torch(norm_first, padded, train_mode):
    theirs = torch_encoder(norm_first).train(train_mode)
    ours = EncoderBlock.from_torch(theirs).train(train_mode)
    assert ours.norm_first is norm_first
    x = randn(B, L, E)
    mask = padding([7, 4, 2], L) if padded else None
    with torch.set_grad_enabled(train_mode):  # eval + no_grad: torch's fused inference path
        expected = theirs(x, src_key_padding_mask=mask)
        got = ours(x, key_padding_mask=mask)
    torch.testing.assert_close(got, expected, **TOL)


def test_encoder_block_padding_changes_only_through_masked_keys():
    ours = EncoderBlock.from_torch(torch_encoder(True)).eval()
    x = randn(B, L, E)
    mask = padding([7, 4, 2], L)
    y = ours(x, key_padding_mask=mask)
    x2 = x.clone()
    x2[mask] = 100.0  # garbage in the padded positions must not reach the real ones
    torch.testing.assert_close(ours(x2, key_padding_mask=mask)[~mask], y[~mask], **TOL)
    assert not torch.allclose(ours(x2)[~mask], y[~mask], **TOL)


def test_encoder_block_gelu_and_eps_are_copied():
    theirs = nn.TransformerEncoderLayer(E, H, F_, dropout=0.0, activation="gelu", batch_first=True,
                                        norm_first=True, layer_norm_eps=1e-6).eval()
    ours = EncoderBlock.from_torch(theirs).eval()
    assert ours.ffn.activation == "gelu" and ours.norm1.eps == 1e-6
    x = randn(2, L, E)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)


def test_encoder_block_state_dict_names_are_stable():
    """The 06.2 checker and the model cache load state_dicts by these names."""
    names = set(EncoderBlock(E, H, F_).state_dict())
    expected = {f"self_attn.{p}_proj.{w}" for p in "qkv" for w in ("weight", "bias")}
    expected |= {"self_attn.out_proj.weight", "self_attn.out_proj.bias"}
    expected |= {f"{m}.{w}" for m in ("norm1", "norm2", "ffn.linear1", "ffn.linear2") for w in ("weight", "bias")}
    assert names == expected


def test_encoder_block_weights_and_causal():
    block = EncoderBlock(E, H, F_).eval()
    x = randn(2, L, E)
    y, w = block.forward_with_weights(x)
    assert w.shape == (2, H, L, L)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, H, L), **TOL)
    torch.testing.assert_close(y, block(x), **TOL)
    _, wc = block.forward_with_weights(x, is_causal=True)
    assert (wc.triu(1) == 0).all()
    # causal: changing the last position leaves the earlier outputs unchanged
    x2 = x.clone()
    x2[:, -1] += 1.0
    torch.testing.assert_close(block(x2, is_causal=True)[:, :-1], block(x, is_causal=True)[:, :-1], **TOL)


def test_encoder_block_dropout_only_in_training():
    block = EncoderBlock(E, H, F_, dropout=0.5).eval()
    x = randn(2, L, E)
    torch.testing.assert_close(block(x), block(x))
    block.train()
    torch.manual_seed(0)
    assert not torch.allclose(block(x), block(x))


def test_post_ln_output_is_normalised_and_pre_ln_is_not():
    x = 5 * randn(2, L, E) + 3
    post = EncoderBlock(E, H, F_, norm_first=False).eval()
    pre = EncoderBlock(E, H, F_, norm_first=True).eval()
    torch.testing.assert_close(post(x).mean(-1), torch.zeros(2, L), atol=1e-5, rtol=0)
    assert pre(x).mean(-1).abs().min() > 0.5  # the residual stream keeps the input's offset


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_decoder_block_equals_torch(norm_first, padded):
    torch.manual_seed(0)
    theirs = nn.TransformerDecoderLayer(E, H, F_, dropout=0.0, batch_first=True, norm_first=norm_first)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    theirs.train()  # the slow path: comparable at every position
    ours = DecoderBlock.from_torch(theirs)
    x, memory = randn(B, L, E), randn(B, S, E, seed=1)
    tgt_pad = padding([7, 5, 3], L) if padded else None
    mem_pad = padding([5, 2, 4], S) if padded else None
    causal = torch.ones(L, L, dtype=torch.bool).triu(1)  # True = blocked, torch's convention
    expected = theirs(x, memory, tgt_mask=causal, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad,
                      tgt_is_causal=True)
    got = ours(x, memory, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad)
    torch.testing.assert_close(got, expected, **TOL)


def test_decoder_block_weights_shapes_and_causality():
    block = DecoderBlock(E, H, F_).eval()
    x, memory = randn(2, L, E), randn(2, S, E, seed=1)
    y, self_w, cross_w = block.forward_with_weights(x, memory)
    assert y.shape == (2, L, E) and self_w.shape == (2, H, L, L) and cross_w.shape == (2, H, L, S)
    assert (self_w.triu(1) == 0).all()
    mem_pad = padding([5, 2], S)
    _, _, cross_w = block.forward_with_weights(x, memory, memory_key_padding_mask=mem_pad)
    assert (cross_w[mem_pad[:, None, None, :].expand_as(cross_w)] == 0).all()
    ablated = DecoderBlock(E, H, F_, cross_attention=False).eval()
    y, _, none = ablated.forward_with_weights(x, memory)
    assert none is None
    torch.testing.assert_close(ablated(x, memory), ablated(x, randn(2, S, E, seed=5)))


def test_feed_forward_activation():
    torch.manual_seed(0)
    ff = FeedForward(E, F_, activation="gelu")
    x = randn(4, E)
    torch.testing.assert_close(ff(x), ff.linear2(torch.nn.functional.gelu(ff.linear1(x))))
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(E, F_, activation="tanh")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(d_model=10, num_heads=3, d_ff=8), ValueError, "divisible by num_heads"),
    (dict(d_model=8, num_heads=2, d_ff=0), ValueError, "d_ff must be an int >= 1"),
    (dict(d_model=8, num_heads=2, d_ff=8, dropout=1.5), ValueError, "dropout must be a probability"),
    (dict(d_model=8, num_heads=2, d_ff=8, norm_first="yes"), TypeError, "norm_first must be a bool"),
])
def test_block_errors(kwargs, error, match):
    for cls in (EncoderBlock, DecoderBlock):
        with pytest.raises(error, match=match):
            cls(**kwargs)


def test_from_torch_errors():
    with pytest.raises(TypeError, match="TransformerEncoderLayer"):
        EncoderBlock.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="norm_first"):
        EncoderBlock(E, H, F_, norm_first=True).load_torch_state(torch_encoder(False))
