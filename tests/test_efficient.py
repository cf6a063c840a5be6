"""Tests for course_lib.efficient: every form against a reference and against each other."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.efficient import (LinearAttentionState, banded_attention, decode_step_times, elu_feature_map,
                                  linear_attention, linear_attention_quadratic, linear_attention_recurrent,
                                  online_softmax_trace, peak_allocated_bytes, quiet_stderr_fd,
                                  sliding_window_attention, sliding_window_mask, softmax_decode_step,
                                  tiled_attention)


def _qkv(L, S, E=16, Ev=8, batch=(2, 3), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*batch, L, E, generator=g, dtype=dtype), torch.randn(*batch, S, E, generator=g, dtype=dtype),
            torch.randn(*batch, S, Ev, generator=g, dtype=dtype))


# --- tiled attention ----------------------------------------------------------------


@pytest.mark.parametrize("L,S,block", [(8, 8, 4), (5, 7, 3), (3, 200, 64), (65, 130, 64), (10, 1, 4), (7, 13, 100)])
@pytest.mark.parametrize("causal", [False, True])
def test_tiled_equals_sdpa_any_length(L, S, block, causal):
    q, k, v = _qkv(L, S, seed=L * 1000 + S)
    got = tiled_attention(q, k, v, block_size=block, is_causal=causal)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-5


def test_tiled_large_scores_stay_finite_and_exact():
    q, k, v = _qkv(20, 50, seed=3, dtype=torch.float64)
    got = tiled_attention(q * 30, k * 30, v, block_size=7)  # scores in the thousands: a plain exp overflows
    assert torch.isinf(torch.exp(q * 30 @ (k * 30).transpose(-2, -1) / 4)).any()
    expected = F.scaled_dot_product_attention(q * 30, k * 30, v)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-8)


def test_tiled_scale_broadcast_float64_and_gradients():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 1, 9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 3, 11, 4, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 3, 11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    got = tiled_attention(q, k, v, block_size=4, scale=0.3)
    expected = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)
    grads = torch.autograd.grad(got.sum(), (q, k, v))
    grads_ref = torch.autograd.grad(expected.sum(), (q, k, v))
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b)


def test_tiled_block_size_does_not_change_the_result():
    q, k, v = _qkv(33, 33, seed=5)
    results = [tiled_attention(q, k, v, block_size=b, is_causal=True) for b in (1, 5, 32, 33, 1000)]
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], atol=1e-6, rtol=1e-5)


def test_tiled_peak_memory_grows_linearly_not_quadratically():
    def peak(L, fn):
        x = torch.randn(L, 32)
        return peak_allocated_bytes(fn, x, x, x)

    naive = lambda q, k, v: torch.softmax(q @ k.T / math.sqrt(32), -1) @ v  # noqa: E731
    tiled = lambda q, k, v: tiled_attention(q, k, v, block_size=32)  # noqa: E731
    naive_ratio = peak(1024, naive) / peak(256, naive)
    tiled_ratio = peak(1024, tiled) / peak(256, tiled)
    assert naive_ratio > 12, naive_ratio  # quadratic: 16x for 4x the length
    assert tiled_ratio < 6, tiled_ratio  # linear: 4x
    assert peak(1024, tiled) < 4 * 1024 * 1024 / 4  # a quarter of one 1024 x 1024 float32 matrix


@pytest.mark.parametrize("bad, match", [
    (dict(block_size=0), "block_size"),
    (dict(block_size=2.5), "block_size"),
    (dict(is_causal="yes"), "is_causal"),
])
def test_tiled_rejects_bad_arguments(bad, match):
    q, k, v = _qkv(4, 4)
    with pytest.raises((TypeError, ValueError), match=match):
        tiled_attention(q, k, v, **bad)


def test_tiled_rejects_mismatched_shapes():
    q, k, v = _qkv(4, 5)
    with pytest.raises(ValueError, match="feature size E"):
        tiled_attention(q[..., :3], k, v)
    with pytest.raises(ValueError, match="positions S"):
        tiled_attention(q, k, v[..., :4, :])
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiled_attention(q.numpy(), k, v)


# --- the online softmax trace -------------------------------------------------------


@pytest.mark.parametrize("S,block", [(10, 3), (7, 7), (5, 1), (4, 10)])
def test_online_softmax_trace_ends_at_softmax(S, block):
    scores = torch.randn(S, generator=torch.Generator().manual_seed(S), dtype=torch.float64) * 3
    steps = online_softmax_trace(scores, block)
    assert len(steps) == math.ceil(S / block)
    torch.testing.assert_close(steps[-1].weights, torch.softmax(scores, -1))
    for step in steps:
        assert step.max_after == max(step.max_before, step.block_max)
        assert step.alpha <= 1.0
        assert math.isclose(step.sum_rescaled, step.alpha * step.sum_before)
        seen = scores[: step.keys[1]]
        assert math.isclose(step.sum_after, float(torch.exp(seen - seen.max()).sum()), rel_tol=1e-12)
        assert math.isclose(float(step.weights.sum()), 1.0, rel_tol=1e-12)


def test_online_softmax_trace_rescales_when_the_max_rises():
    steps = online_softmax_trace(torch.tensor([0.0, 0.0, 5.0, 0.0]), 2)
    assert steps[1].alpha == pytest.approx(math.exp(-5.0))
    assert steps[0].alpha == 0.0  # nothing to rescale before the first block


def test_online_softmax_trace_rejects_bad_scores():
    with pytest.raises(ValueError, match="1-D"):
        online_softmax_trace(torch.zeros(2, 3), 2)
    with pytest.raises(ValueError, match="finite"):
        online_softmax_trace(torch.tensor([0.0, float("-inf")]), 1)


# --- sliding window -----------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window,block", [(0, 4), (1, 3), (3, 16), (5, 2), (40, 8)])
def test_banded_equals_masked_reference(window, block, causal):
    q, k, v = _qkv(37, 37, seed=window * 10 + block)
    got = banded_attention(q, k, v, window, causal=causal, block_size=block)
    expected = sliding_window_attention(q, k, v, window, causal=causal)
    assert (got - expected).abs().max().item() < 1e-5


def test_sliding_window_reference_against_a_loop():
    q, k, v = _qkv(9, 9, batch=(), seed=2)
    got = sliding_window_attention(q, k, v, 2)
    for i in range(9):
        lo, hi = max(0, i - 2), min(9, i + 3)
        w = torch.softmax(q[i] @ k[lo:hi].T / math.sqrt(16), -1)
        torch.testing.assert_close(got[i], w @ v[lo:hi])


def test_wide_window_is_full_attention_and_window_zero_is_identity_on_values():
    q, k, v = _qkv(12, 12, seed=4)
    torch.testing.assert_close(banded_attention(q, k, v, 11), F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(banded_attention(q, k, v, 11, causal=True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True))
    torch.testing.assert_close(banded_attention(q, k, v, 0), v)
    assert torch.equal(sliding_window_mask(4, 1), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1],
                                                                [0, 0, 1, 1]], dtype=torch.bool))


def test_banded_memory_grows_linearly():
    def peak(L):
        x = torch.randn(L, 16)
        return peak_allocated_bytes(banded_attention, x, x, x, 16, block_size=32)

    ratio = peak(2048) / peak(512)
    assert ratio < 6, ratio


def test_window_rejects_bad_arguments():
    q, k, v = _qkv(6, 6)
    with pytest.raises(ValueError, match="window"):
        banded_attention(q, k, v, -1)
    with pytest.raises(TypeError, match="causal"):
        sliding_window_attention(q, k, v, 1, causal=1)
    with pytest.raises(ValueError, match="as many queries as keys"):
        banded_attention(q, k[..., :5, :], v[..., :5, :], 1)


# --- linear attention ---------------------------------------------------------------


def test_feature_map_is_positive_elu_plus_one():
    x = torch.linspace(-10, 5, 101)
    phi = elu_feature_map(x)
    assert (phi > 0).all()
    torch.testing.assert_close(phi, torch.where(x > 0, x + 1, torch.exp(x)))


def _linear_loop(q, k, v, causal, eps=1e-6):
    """Katharopoulos et al. eq. 4 written out, one query at a time."""
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    out = []
    for i in range(q.shape[-2]):
        stop = i + 1 if causal else k.shape[-2]
        sim = fk[..., :stop, :] @ fq[..., i, :, None]  # (..., stop, 1)
        out.append((sim * v[..., :stop, :]).sum(-2) / (sim.sum(-2) + eps))
    return torch.stack(out, dim=-2)


@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_forms_agree_with_a_loop(causal):
    q, k, v = _qkv(23, 23, seed=7)
    expected = _linear_loop(q, k, v, causal)
    for fn in (linear_attention, linear_attention_quadratic):
        torch.testing.assert_close(fn(q, k, v, causal=causal), expected, atol=1e-5, rtol=1e-5)
    if causal:
        torch.testing.assert_close(linear_attention_recurrent(q, k, v), expected, atol=1e-5, rtol=1e-5)


def test_linear_attention_noncausal_cross_attention_and_float64():
    q, k, v = _qkv(5, 9, seed=8, dtype=torch.float64)
    torch.testing.assert_close(linear_attention(q, k, v), _linear_loop(q, k, v, False))
    torch.testing.assert_close(linear_attention(q, k, v), linear_attention_quadratic(q, k, v))


def test_linear_attention_is_causal():
    q, k, v = _qkv(10, 10, seed=9)
    out = linear_attention(q, k, v, causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[..., 6:, :] += 5.0
    v2[..., 6:, :] -= 3.0
    out2 = linear_attention(q, k2, v2, causal=True)
    torch.testing.assert_close(out[..., :6, :], out2[..., :6, :])
    assert not torch.allclose(out[..., 6:, :], out2[..., 6:, :])


def test_linear_state_is_constant_size_and_steps_match():
    q, k, v = _qkv(40, 40, E=8, Ev=6, batch=(3,), seed=10)
    state = LinearAttentionState.empty((3,), 8, 6)
    size = state.nbytes()
    outs = [state.step(q[:, t], k[:, t], v[:, t]) for t in range(40)]
    assert state.nbytes() == size == 4 * 3 * (8 * 6 + 8)
    torch.testing.assert_close(torch.stack(outs, 1), linear_attention(q, k, v, causal=True), atol=1e-5, rtol=1e-5)


def test_linear_attention_rejects_bad_arguments():
    q, k, v = _qkv(4, 6)
    with pytest.raises(ValueError, match="as many queries as keys"):
        linear_attention(q, k, v, causal=True)
    with pytest.raises(ValueError, match="eps"):
        linear_attention(q, k, v, eps=-1.0)
    with pytest.raises(TypeError, match="causal"):
        linear_attention(q, k, v, causal="no")


# --- measurement --------------------------------------------------------------------


def test_softmax_decode_step_equals_last_row_of_causal_attention():
    q, k, v = _qkv(12, 12, seed=11)
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(softmax_decode_step(q[..., -1, :], k, v), full[..., -1, :])


def test_decode_step_times_shape_and_positive():
    times = decode_step_times([4, 64], dim=8, batch=2, repeats=2)
    assert set(times) == {"softmax + KV cache", "linear attention"}
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())


def test_peak_allocated_bytes_sees_a_known_allocation_and_stays_quiet(capfd):
    peak = peak_allocated_bytes(lambda: torch.empty(1024, 1024).fill_(1.0))
    assert 4 * 2**20 <= peak < 5 * 2**20
    captured = capfd.readouterr()
    assert "USDT" not in captured.err and "profiler" not in captured.err
    with quiet_stderr_fd():
        pass
    import sys
    print("still here", file=sys.stderr)
    assert "still here" in capfd.readouterr().err


# --- the online softmax explorer ----------------------------------------------------


def test_example_scores_raise_the_max_after_the_first_block():
    from course_lib.widgets.online_softmax import example_scores

    scores = example_scores(24, seed=3, jumps=2)
    steps = online_softmax_trace(scores, 4)
    assert sum(1 for s in steps[1:] if s.alpha < 1) >= 2
    assert torch.equal(scores, example_scores(24, seed=3, jumps=2))


def test_online_softmax_figure_has_three_labelled_panels_and_checks_step():
    from course_lib.widgets.online_softmax import online_softmax_figure

    fig = online_softmax_figure(block_size=5, step=1)
    assert len(fig.axes) == 3
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    with pytest.raises(ValueError, match="step must be in"):
        online_softmax_figure(block_size=5, step=5)


def test_online_softmax_explorer_follows_its_controls():
    from course_lib.widgets.online_softmax import online_softmax_explorer

    ex = online_softmax_explorer(length=20, block_size=4)
    assert ex.last_result["step"].index == 0
    first_png = ex.png()
    ex.controls["step"].value = 3  # the first control moves the picture
    assert ex.last_result["step"].index == 3 and ex.png() != first_png
    ex.controls["block_size"].value = 10  # only two blocks now: the step follows
    assert ex.values["step"] == 1 and ex.controls["step"].max == 1
    torch.testing.assert_close(ex.last_result["step"].weights, torch.softmax(ex.last_result["scores"], -1))
    ex.controls["seed"].value = 5
    assert ex.last_error is None and len(ex.last_result["steps"]) == 2


# --- associative recall -------------------------------------------------------------


def test_recall_batches_pair_the_query_with_its_value():
    from course_lib.data.recall import RecallTask

    task = RecallTask(num_keys=10, num_values=5)
    b = task.batch(50, 10, torch.Generator().manual_seed(0))
    assert b.keys.shape == b.values.shape == (50, 10) and b.query.shape == b.target.shape == (50,)
    assert all(len(set(row.tolist())) == 10 for row in b.keys)  # distinct keys
    for i in range(50):
        j = int((b.keys[i] == b.query[i]).nonzero())
        assert b.values[i, j] == b.target[i]
    with pytest.raises(ValueError, match="n_pairs must be <= num_keys"):
        task.batch(2, 11)
    with pytest.raises(TypeError, match="generator"):
        task.batch(2, 3, generator=0)


def test_recall_model_attend_override_and_linear_switch():
    from course_lib.data.recall import RecallTask
    from course_lib.efficient.recall import RecallModel, recall_accuracy

    task = RecallTask(8, 8)
    b = task.batch(4, 5, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    soft = RecallModel(8, 8, d_model=16, feature_dim=4, value_dim=8)
    tiled = lambda q, k, v: tiled_attention(q, k, v, block_size=2)  # noqa: E731
    torch.testing.assert_close(soft(b.keys, b.values, b.query, attend=tiled), soft(b.keys, b.values, b.query))
    lin = RecallModel(8, 8, d_model=16, feature_dim=4, value_dim=8, attention="linear")
    assert lin(b.keys, b.values, b.query).shape == (4, 8)
    assert 0.0 <= recall_accuracy(lin, task, 3, samples=20) <= 1.0
    with pytest.raises(ValueError, match="attention must be"):
        RecallModel(8, 8, attention="cosine")


def test_recall_experiments_are_registered_and_train_through_the_cache(monkeypatch, tmp_path):
    from course_lib import experiments

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    assert {"recall_softmax", "recall_linear"} <= set(experiments.names())
    tiny = dict(steps=3, batch_size=8, max_pairs=4, eval_pairs=(2, 4), eval_samples=16, d_model=8, value_dim=8)
    run = experiments.run("recall_linear", progress=False, **tiny)
    assert run.model.attention == "linear" and not run.from_cache
    assert set(run.history.evals) == {"accuracy@2", "accuracy@4"}
    assert experiments.run("recall_linear", progress=False, **tiny).from_cache
    with pytest.raises(ValueError, match="eval_pairs"):
        experiments.run("recall_softmax", progress=False, **dict(tiny, eval_pairs=(8,)))


def test_tiled_benchmark_rows_and_table():
    from course_lib.efficient import format_tiled_benchmark, tiled_benchmark

    rows = tiled_benchmark(lengths=(64, 128), dim=8, block_size=16, repeats=1)
    assert [r["L"] for r in rows] == [64, 128]
    assert all(r["max_error"] < 1e-5 and r["ours_bytes"] > 0 and r["ours_s"] > 0 and r["torch_wall_s"] > 0 for r in rows)
    table = format_tiled_benchmark(rows)
    assert table.count("\n") == 2 and "ratio" in table


def test_largest_intermediate_tells_tiled_from_full_matrix_and_sees_sdpa():
    from course_lib.efficient import largest_intermediate

    x = torch.randn(256, 16)
    out, tiled = largest_intermediate(tiled_attention, x, x, x, block_size=32)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(x, x, x), atol=1e-5, rtol=1e-5)
    assert tiled.numel <= 256 * 32 and not tiled.called_sdpa()
    _, naive = largest_intermediate(lambda: torch.softmax(x @ x.T, -1) @ x)
    assert naive.numel == 256 * 256 and naive.shape == (256, 256)
    _, fused = largest_intermediate(F.scaled_dot_product_attention, x[None, None], x[None, None], x[None, None])
    assert fused.called_sdpa()
