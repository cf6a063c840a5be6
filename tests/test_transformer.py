"""course_lib.transformer: shapes, per-head weights, positions, causality, parameter counts, errors."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.positional import sinusoidal_encoding
from course_lib.train import count_parameters
from course_lib.transformer import (
    POSITIONAL_KINDS,
    AttentionLayer,
    AttentionTagger,
    FeedForward,
    TokenEmbedding,
    tagging_accuracy,
    tagging_loss,
)

TOL = dict(atol=1e-5, rtol=1e-5)


def tokens(B, L, vocab=13, seed=0):
    return torch.randint(0, vocab, (B, L), generator=torch.Generator().manual_seed(seed))


def tagger(seed=0, **kwargs):
    torch.manual_seed(seed)
    config = dict(vocab_size=13, num_classes=13, d_model=16, num_heads=2, d_ff=32, max_len=10)
    config.update(kwargs)
    return AttentionTagger(**config).eval()


# --------------------------------------------------------------------------- TokenEmbedding


@pytest.mark.parametrize("positional", POSITIONAL_KINDS)
def test_embedding_shape_and_parameter_count(positional):
    emb = TokenEmbedding(13, 8, max_len=10, positional=positional)
    assert emb(tokens(3, 7)).shape == (3, 7, 8)
    extra = {"none": 0, "sinusoidal": 0, "learned": 10 * 8}[positional]
    assert count_parameters(emb) == 13 * 8 + extra


def test_embedding_adds_the_positional_table():
    torch.manual_seed(0)
    t = tokens(2, 6)
    none = TokenEmbedding(13, 8, max_len=10, positional="none")
    sinus = TokenEmbedding(13, 8, max_len=10, positional="sinusoidal")
    sinus.token.load_state_dict(none.token.state_dict())
    torch.testing.assert_close(none(t), none.token(t))
    torch.testing.assert_close(sinus(t), none(t) + sinusoidal_encoding(10, 8)[:6])
    learned = TokenEmbedding(13, 8, max_len=10, positional="learned")
    torch.testing.assert_close(learned(t), learned.token(t) + learned.position.weight[:6])


def test_embedding_starts_small():
    emb = TokenEmbedding(50, 64, positional="none")
    assert 0.015 < emb.token.weight.std().item() < 0.025


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(positional="rotary"), ValueError, "positional must be one of"),
        (dict(positional="sinusoidal", d_model=7), ValueError, "even d_model"),
        (dict(vocab_size=0), ValueError, "vocab_size must be an int >= 1"),
        (dict(d_model=8.0), TypeError, "d_model must be an int"),
    ],
)
def test_embedding_constructor_errors(kwargs, exc, words):
    config = dict(vocab_size=13, d_model=8, max_len=10, positional="learned")
    config.update(kwargs)
    with pytest.raises(exc, match=words):
        TokenEmbedding(**config)


@pytest.mark.parametrize(
    "bad,exc,words",
    [
        ([[1, 2, 3]], TypeError, "LongTensor of shape"),
        (torch.ones(2, 3), ValueError, "LongTensor of shape"),
        (torch.ones(2, 3, 1, dtype=torch.long), ValueError, "shape \\(B, L\\)"),
        (torch.full((2, 3), 13), ValueError, r"ids in \[0, 13\)"),
        (torch.zeros(2, 11, dtype=torch.long), ValueError, "more than max_len = 10"),
    ],
)
def test_embedding_input_errors(bad, exc, words):
    with pytest.raises(exc, match=words):
        TokenEmbedding(13, 8, max_len=10)(bad)


# --------------------------------------------------------------------------- FeedForward


def test_feed_forward_is_position_wise():
    torch.manual_seed(0)
    ffn = FeedForward(8, 16)
    x = torch.randn(2, 5, 8)
    y = ffn(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 3] += 1.0
    changed = (ffn(x2) - y).abs().amax(dim=(0, 2))  # (L,)
    assert changed[3] > 0 and torch.all(changed[[0, 1, 2, 4]] == 0)
    torch.testing.assert_close(y, ffn.linear2(torch.relu(ffn.linear1(x))))


# --------------------------------------------------------------------------- AttentionLayer


def test_layer_returns_per_head_weights_that_are_distributions():
    torch.manual_seed(0)
    layer = AttentionLayer(16, 4, d_ff=32).eval()
    x = torch.randn(3, 6, 16)
    y, w = layer(x, need_weights=True)
    assert y.shape == (3, 6, 16) and w.shape == (3, 4, 6, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 6))
    y_fast, none = layer(x)
    assert none is None
    torch.testing.assert_close(y_fast, y, **TOL)  # fused kernel vs teaching path


def test_layer_without_feed_forward_is_attention_plus_residual():
    torch.manual_seed(0)
    layer = AttentionLayer(8, 2, d_ff=0)
    assert layer.ffn is None and layer.norm2 is None
    x = torch.randn(2, 5, 8)
    h = layer.norm1(x)
    expected = x + layer.attn(h, h, h, need_weights=False)[0]
    torch.testing.assert_close(layer(x)[0], expected, **TOL)


def test_layer_respects_padding():
    torch.manual_seed(0)
    layer = AttentionLayer(8, 2).eval()
    x = torch.randn(2, 5, 8)
    blocked = torch.tensor([[False] * 5, [False, False, False, True, True]])  # True = padding
    y, w = layer(x, key_padding_mask=blocked, need_weights=True)
    assert torch.all(w[1, :, :, 3:] == 0)
    y_short, _ = layer(x[1:, :3])
    torch.testing.assert_close(y[1, :3], y_short[0], **TOL)


def test_causal_layer_ignores_the_future():
    torch.manual_seed(0)
    layer = AttentionLayer(8, 2, d_ff=16, causal=True).eval()
    x = torch.randn(1, 6, 8)
    y, w = layer(x, need_weights=True)
    assert torch.all(w[..., torch.ones(6, 6, dtype=torch.bool).triu(1)] == 0)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(1, 2, 8)
    torch.testing.assert_close(layer(x2)[0][:, :4], y[:, :4], **TOL)


@pytest.mark.parametrize(
    "args,kwargs,exc,words",
    [
        ((10, 3), {}, ValueError, "divisible by num_heads"),
        ((8, 0), {}, ValueError, "num_heads must be an int >= 1"),
        ((8, 2), dict(d_ff=-1), ValueError, "d_ff must be an int >= 0"),
        ((8, 2), dict(causal=1), TypeError, "causal must be a bool"),
    ],
)
def test_layer_errors(args, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        AttentionLayer(*args, **kwargs)


# --------------------------------------------------------------------------- AttentionTagger


@pytest.mark.parametrize("num_outputs,shape", [(1, (4, 7, 13)), (2, (4, 7, 2, 13)), (3, (4, 7, 3, 13))])
def test_tagger_logit_shapes(num_outputs, shape):
    model = tagger(num_outputs=num_outputs)
    assert model(tokens(4, 7)).shape == shape
    assert len(model.heads) == num_outputs


def test_tagger_exposes_every_layer_and_head():
    model = tagger(num_layers=3, num_heads=4)
    logits, maps = model(tokens(2, 6), need_weights=True)
    assert model.num_heads == 4
    assert len(maps) == 3 and all(m.shape == (2, 4, 6, 6) for m in maps)
    torch.testing.assert_close(logits, model(tokens(2, 6)), **TOL)


def test_tagger_without_positions_is_permutation_equivariant():
    model = tagger(positional="none", num_layers=2, num_outputs=2)
    t = tokens(3, 8)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    logits, maps = model(t, need_weights=True)
    logits_p, maps_p = model(t[:, perm], need_weights=True)
    torch.testing.assert_close(logits_p, logits[:, perm], **TOL)
    torch.testing.assert_close(maps_p[0], maps[0][:, :, perm][..., perm], **TOL)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_tagger_with_positions_sees_order(positional):
    model = tagger(positional=positional)
    if positional == "learned":  # the table starts tiny; make the positions matter
        torch.nn.init.normal_(model.embed.position.weight)
    t = tokens(3, 8)
    perm = torch.arange(8).flip(0)
    gap = (model(t[:, perm]) - model(t)[:, perm]).abs().max().item()
    assert gap > 1e-3


def test_causal_tagger_output_does_not_depend_on_later_tokens():
    model = tagger(causal=True, num_layers=2)
    t = tokens(2, 8)
    t2 = t.clone()
    t2[:, 5:] = (t2[:, 5:] + 1) % 13
    torch.testing.assert_close(model(t2)[:, :5], model(t)[:, :5], **TOL)
    assert (model(t2)[:, 5:] - model(t)[:, 5:]).abs().max() > 1e-4


def test_heads_share_the_width_so_parameter_counts_match():
    counts = {h: count_parameters(tagger(num_heads=h, d_model=16)) for h in (1, 2, 4, 8)}
    assert len(set(counts.values())) == 1, counts


def test_tagger_parameter_count_by_hand():
    V, C, E, F_, L = 13, 7, 16, 32, 10
    model = AttentionTagger(V, C, d_model=E, num_heads=2, d_ff=F_, max_len=L, positional="learned", num_outputs=2)
    embed = V * E + L * E
    layer = 2 * E + 4 * (E * E + E) + 2 * E + (E * F_ + F_) + (F_ * E + E)  # norm1, attn, norm2, ffn
    expected = embed + layer + 2 * E + 2 * (E * C + C)  # final norm, 2 classifiers
    assert count_parameters(model) == expected


def test_tagger_padding_mask_hides_padded_keys():
    model = tagger()
    t = tokens(2, 6)
    blocked = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    _, maps = model(t, key_padding_mask=blocked, need_weights=True)
    assert torch.all(maps[0][1, :, :, 4:] == 0)


def test_tagger_learns_to_copy():
    torch.manual_seed(0)
    model = AttentionTagger(8, 8, d_model=16, num_heads=2, d_ff=0, max_len=6, positional="none")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(60):
        t = torch.randint(0, 8, (32, 6), generator=g)
        loss = tagging_loss(model(t), t)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(num_outputs=0), ValueError, "num_outputs must be an int >= 1"),
        (dict(num_classes=0), ValueError, "num_classes must be an int >= 1"),
        (dict(num_layers=0), ValueError, "num_layers must be an int >= 1"),
        (dict(num_heads=3), ValueError, "divisible by num_heads"),
        (dict(positional="alibi"), ValueError, "positional must be one of"),
    ],
)
def test_tagger_errors(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        tagger(**kwargs)


def test_tagger_rejects_sequences_longer_than_max_len():
    with pytest.raises(ValueError, match="more than max_len = 10"):
        tagger()(tokens(1, 11))


# --------------------------------------------------------------------------- loss and accuracy


def test_tagging_loss_matches_cross_entropy_and_ignores():
    logits = torch.randn(2, 5, 3, 7, generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, 7, (2, 5, 3), generator=torch.Generator().manual_seed(1))
    expected = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1))
    torch.testing.assert_close(tagging_loss(logits, targets), expected)
    targets[0, 0, 0] = -100
    keep = targets.reshape(-1) != -100
    expected = F.cross_entropy(logits.reshape(-1, 7)[keep], targets.reshape(-1)[keep])
    torch.testing.assert_close(tagging_loss(logits, targets), expected)
    with pytest.raises(ValueError, match="do not match"):
        tagging_loss(logits, targets[..., 0])


def test_tagging_accuracy_counts_tokens_and_rows():
    targets = torch.tensor([[1, 2, 3], [1, 2, 3]])
    predicted = torch.tensor([[1, 2, 3], [1, 0, 3]])
    logits = F.one_hot(predicted, 4).float()
    token, exact = tagging_accuracy(logits, targets)
    assert token == pytest.approx(5 / 6) and exact == pytest.approx(0.5)
    targets[1, 1] = -100  # the only mistake is no longer labelled
    assert tagging_accuracy(logits, targets) == (pytest.approx(1.0), pytest.approx(1.0))
    with pytest.raises(ValueError, match="do not match"):
        tagging_accuracy(logits, targets[:, :2])
