"""The claims of notebooks/03_self_attention.ipynb, checked on more seeds than
the notebook runs with, so that its assertion margins are known to hold.

The measurements repeat the notebook's (same sizes, same thresholds); the
notebook stays the teaching text, this file the evidence that its thresholds
are not tuned to one seed.
"""

import math

import pytest
import torch

from course_lib import widgets

SEEDS = range(5)
D_KS = [4, 16, 64, 128, 256, 512, 1024]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_variance_of_q_dot_k_is_d_k_within_10_percent(seed):
    g = torch.Generator().manual_seed(seed)
    for d in D_KS:
        dots = torch.cat([(torch.randn(5_000, d, generator=g) * torch.randn(5_000, d, generator=g)).sum(-1)
                          for _ in range(4)])  # 20,000 pairs, as in the notebook
        assert 0.9 < dots.var().item() / d < 1.1, (seed, d)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_unscaled_softmax_saturates_and_its_gradient_vanishes_at_512(seed):
    g = torch.Generator().manual_seed(seed)
    d = 512
    q, k = torch.randn(1024, d, generator=g), torch.randn(32, d, generator=g)
    upstream = torch.randn(1024, 32, generator=g)
    stats = {}
    for name, scale in [("unscaled", 1.0), ("scaled", 1 / math.sqrt(d))]:
        logits = (q @ k.T * scale).requires_grad_()
        weights = torch.softmax(logits, dim=-1)
        (weights * upstream).sum().backward()
        top, grad = weights.max(-1).values.detach(), logits.grad.norm(dim=-1)
        stats[name] = (top.mean().item(), (top > 0.99).float().mean().item(), grad.mean().item(),
                       grad.median().item())
    (u_top, u_sat, u_mean, u_median), (s_top, s_sat, s_mean, s_median) = stats["unscaled"], stats["scaled"]
    assert u_top > 0.85 and s_top < 0.3
    assert u_sat > 0.4 and s_sat < 0.01
    assert s_median / u_median > 30 and s_mean / u_mean > 2


def test_hand_built_sentence_claims():
    cat_sentence = widgets.DEFAULT_SENTENCES["The cat sat on the mat"]
    weights = widgets.self_attention_weights(cat_sentence)
    outputs = weights @ widgets.query_key_value(cat_sentence)[2]
    assert cat_sentence[int(weights[1].argmax())] == "sat"
    assert torch.isclose(weights[2, 1], weights[2, 5]) and weights[2, 1] > 2 * weights[2, 0]
    out_sat = dict(zip(widgets.FEATURES, outputs[2].tolist()))
    assert out_sat["noun"] > 0.6 and out_sat["noun"] > 5 * out_sat["verb"]


def test_cat_on_mat_and_mat_on_cat_look_the_same_to_sat():
    a, b = ["the", "cat", "sat", "on", "the", "mat"], ["the", "mat", "sat", "on", "the", "cat"]
    out_a = widgets.self_attention_weights(a) @ widgets.query_key_value(a)[2]
    out_b = widgets.self_attention_weights(b) @ widgets.query_key_value(b)[2]
    torch.testing.assert_close(out_a[2], out_b[2])
