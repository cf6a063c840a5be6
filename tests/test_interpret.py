"""Tests for course_lib.interpret: rollout against a loop, attributions on models whose answer is known."""

import pytest
import torch

from course_lib.interpret import attention_rollout, gradient_x_input, leave_one_out, rank_correlation


def _maps(layers, B=2, H=3, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(torch.randn(B, H, L, L, generator=g), -1) for _ in range(layers)]


def test_rollout_rows_sum_to_one_and_match_a_loop():
    maps = _maps(3)
    rollout = attention_rollout(maps)
    assert rollout.shape == (2, 5, 5)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))
    for b in range(2):
        expected = torch.eye(5)
        for a in maps:  # first layer first: each new layer multiplies on the left
            mixed = 0.5 * a[b].mean(0) + 0.5 * torch.eye(5)
            mixed = mixed / mixed.sum(-1, keepdim=True)
            expected = mixed @ expected
        torch.testing.assert_close(rollout[b], expected)


def test_rollout_order_matters_and_one_layer_is_the_mixed_map():
    maps = _maps(2, seed=1)
    assert not torch.allclose(attention_rollout(maps), attention_rollout(maps[::-1]))
    one = attention_rollout(maps[:1])
    torch.testing.assert_close(one, 0.5 * maps[0].mean(1) + 0.5 * torch.eye(5))


def test_rollout_of_identity_attention_is_identity_and_residual_zero_is_plain_product():
    eye = torch.eye(4).expand(1, 2, 4, 4)
    torch.testing.assert_close(attention_rollout([eye, eye]), torch.eye(4)[None])
    maps = _maps(2, B=1, L=4, seed=2)
    torch.testing.assert_close(attention_rollout(maps, residual=0.0), maps[1].mean(1) @ maps[0].mean(1))


def test_rollout_rejects_bad_input():
    with pytest.raises(TypeError, match="list of"):
        attention_rollout(torch.rand(1, 1, 3, 3))
    with pytest.raises(ValueError, match="attentions\\[1\\]"):
        attention_rollout([torch.rand(1, 1, 3, 3), torch.rand(1, 3, 3)])
    with pytest.raises(ValueError, match="same B and L"):
        attention_rollout([torch.rand(1, 1, 3, 3), torch.rand(1, 1, 4, 4)])
    with pytest.raises(ValueError, match="residual"):
        attention_rollout(_maps(1), residual=2.0)


def _linear_score(w):
    return lambda x: (x * w).sum(dim=(-1, -2))  # score = sum_i x_i . w_i


def test_gradient_x_input_of_a_linear_score_is_each_tokens_contribution():
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(2, 6, 4, generator=g), torch.randn(6, 4, generator=g)
    attribution = gradient_x_input(_linear_score(w), x)
    torch.testing.assert_close(attribution, (x * w).sum(-1))
    torch.testing.assert_close(attribution.sum(-1), _linear_score(w)(x))  # complete for a linear model
    assert not x.requires_grad


def test_leave_one_out_of_a_linear_score_with_zero_baseline_equals_gradient_x_input():
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(3, 5, 4, generator=g), torch.randn(5, 4, generator=g)
    torch.testing.assert_close(leave_one_out(_linear_score(w), x), gradient_x_input(_linear_score(w), x))
    baseline = torch.ones(4)
    torch.testing.assert_close(leave_one_out(_linear_score(w), x, baseline), ((x - baseline) * w).sum(-1))


def test_attributions_find_the_one_token_a_nonlinear_score_reads():
    x = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(5)) + 2.0
    score = lambda e: torch.tanh(e[:, 2].sum(-1)) * 3  # noqa: E731  only token 2 matters
    for attribution in (gradient_x_input(score, x), leave_one_out(score, x)):
        others = torch.cat([attribution[:, :2], attribution[:, 3:]], dim=1)
        assert torch.all(others == 0) and torch.all(attribution[:, 2] != 0)


def test_attributions_reject_bad_shapes():
    with pytest.raises(ValueError, match="\\(B, L, E\\)"):
        gradient_x_input(lambda x: x.sum(), torch.randn(3, 4))
    with pytest.raises(ValueError, match="one value per example"):
        gradient_x_input(lambda x: x.sum(), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="\\(B, L, E\\)"):
        leave_one_out(lambda x: x.sum(), torch.zeros(3, 4, dtype=torch.long))


def test_rank_correlation_values_and_ties():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[10.0, 20.0, 30.0, 40.0], [4.0, 3.0, 2.0, 1.0]])
    torch.testing.assert_close(rank_correlation(a, b), torch.tensor([1.0, -1.0], dtype=torch.float64))
    # with ties, Spearman = Pearson of average ranks: [0.5, 0.5, 2, 3] against [0, 1, 2, 3]
    r = rank_correlation(torch.tensor([1.0, 1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    ra, rb = torch.tensor([0.5, 0.5, 2.0, 3.0]), torch.tensor([0.0, 1.0, 2.0, 3.0])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    assert r.item() == pytest.approx(float((ra * rb).sum() / (ra.norm() * rb.norm())))
    assert rank_correlation(torch.tensor([1.0, 3.0, 2.0]), torch.tensor([5.0, 100.0, 6.0])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(torch.zeros(3), torch.zeros(4))


def test_total_variation():
    from course_lib.interpret import total_variation
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(total_variation(p, q), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError):
        total_variation(p, q[:1])


def test_gpt_attentions_match_the_model_and_are_causal():
    from course_lib.gpt import GPT, GPTConfig
    from course_lib.interpret import gpt_attentions
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    tokens = torch.randint(0, 11, (3, 9))
    logits, maps = gpt_attentions(model, tokens)
    assert torch.allclose(logits, model(tokens), atol=1e-5)
    assert len(maps) == 2 and maps[0].shape == (3, 2, 9, 9)
    assert torch.allclose(maps[1].sum(-1), torch.ones(3, 2, 9), atol=1e-6)
    assert maps[0].triu(diagonal=1).abs().max() == 0  # no position sees the future
    assert torch.allclose(attention_rollout(maps).sum(-1), torch.ones(3, 9), atol=1e-6)


def test_known_token_model_override_with_its_own_weights_changes_nothing():
    from course_lib.experiments.interpret import KnownTokenConfig, KnownTokenModel, KnownTokenTask
    config = KnownTokenConfig()
    torch.manual_seed(0)
    model = KnownTokenModel(config).eval()
    batch = KnownTokenTask(config).batch(5, torch.Generator().manual_seed(0))
    x = model.token_embeddings(batch.tokens)
    logits, maps = model.forward_embeddings(x, need_weights=True)
    assert torch.allclose(model.forward_embeddings(x, attention=maps), logits, atol=1e-6)
    # the hand-written block equals the course's EncoderBlock
    z = torch.randn(5, config.length + 1, config.d_model)
    y, w = model._block(model.blocks[0], z, None)
    y_ref, w_ref = model.blocks[0].forward_with_weights(z)
    assert torch.allclose(y, y_ref, atol=1e-5) and torch.allclose(w, w_ref, atol=1e-6)
    assert batch.relevant.sum(-1).eq(1).all()
    assert ((batch.tokens >= config.num_fillers) == batch.relevant.bool()).all()
    uniform = KnownTokenModel(KnownTokenConfig(uniform=True))
    _, maps_u = uniform(batch.tokens, need_weights=True)
    assert torch.allclose(maps_u[0], torch.full_like(maps_u[0], 1 / (config.length + 1)))
