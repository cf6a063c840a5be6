"""The GPT of notebook 07: causality, the KV cache (exact at every step), sampling, the masked LM, memorisation."""

import random

import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import MultiHeadAttention
from course_lib.gpt import (GPT, GPTConfig, KVCache, generate, longest_copied_substring, mask_tokens,
                            masked_lm_loss, next_token_loss, sample_next)
from course_lib.gpt.masked import IGNORE

SMALL = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)


def small(seed=0, **changes):
    torch.manual_seed(seed)
    return GPT(SMALL.replace(**changes)).eval()


def tokens(B=2, T=10, V=11, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- config and model


def test_config_checks_sizes_and_is_frozen():
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(TypeError, match="n_layer must be an int"):
        GPTConfig(n_layer=2.0)
    with pytest.raises(Exception):
        SMALL.n_layer = 3
    assert SMALL.replace(n_layer=3).n_layer == 3 and SMALL.n_layer == 2


def test_attention_is_the_course_multi_head_attention_with_tied_head():
    model = small()
    attn = model.blocks[0].attn
    assert isinstance(attn, MultiHeadAttention)
    assert {"q_proj", "k_proj", "v_proj", "out_proj"} <= {n for n, _ in attn.named_children()}
    assert model.head.weight is model.wte.weight
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_logits_shape_and_clear_errors():
    model = small()
    assert model(tokens()).shape == (2, 10, 11)
    with pytest.raises(ValueError, match="block_size = 16"):
        model(tokens(T=17))
    with pytest.raises(ValueError, match=r"ids in \[0, 11\)"):
        model(torch.full((1, 3), 11))
    with pytest.raises(ValueError, match="LongTensor of shape"):
        model(torch.zeros(1, 3))


@pytest.mark.parametrize("fast", [True, False])
def test_causal_model_does_not_see_the_future(fast):
    model = small(fast=fast)
    x = tokens(T=12)
    changed = x.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 11
    a, b = model(x), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-3


def test_bidirectional_model_sees_both_sides():
    model = small(causal=False)
    x = tokens(T=12)
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 11
    assert (model(x)[:, 0] - model(changed)[:, 0]).abs().max() > 1e-4


def test_fast_and_readable_attention_agree():
    a, b = small(fast=True), small(fast=False)
    x = tokens()
    torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- KV cache


def test_cache_layout_and_size():
    cache = KVCache(SMALL, batch_size=3)
    assert cache.keys.shape == (2, 3, 2, 16, 8) and cache.values.shape == cache.keys.shape
    assert cache.nbytes == 2 * 2 * 3 * 16 * 16 * 4
    assert "0/16" in repr(cache)


def test_prefill_then_one_token_at_a_time_equals_recomputation():
    model = small()
    x = tokens(T=16)
    full = model(x)
    cache = model.new_cache(2)
    parts = [model(x[:, :5], cache), model(x[:, 5:9], cache)]  # a prompt, then several positions at once
    parts += [model(x[:, t:t + 1], cache) for t in range(9, 16)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 16
    with pytest.raises(ValueError, match="block_size"):
        model(x[:, :1], cache)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fast", [True, False])
def test_generate_with_cache_gives_recomputation_logits_at_every_step(seed, fast):
    model = small(seed, fast=fast)
    prompt = tokens(B=3, T=4, seed=seed)
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    out_c, logits_c = generate(model, prompt, 12, temperature=1.0, use_cache=True, generator=g1, return_logits=True)
    out_r, logits_r = generate(model, prompt, 12, temperature=1.0, use_cache=False, generator=g2, return_logits=True)
    assert logits_c.shape == (3, 12, 11)
    assert (logits_c - logits_r).abs().max() <= 1e-5
    assert torch.equal(out_c, out_r)
    # and every step's logits are those of a plain forward pass over the sequence so far
    for t in range(12):
        torch.testing.assert_close(model(out_c[:, :4 + t])[:, -1], logits_c[:, t], atol=1e-5, rtol=1e-5)


def test_past_the_context_recompute_stays_exact_and_restart_stays_valid():
    model = small()
    prompt = tokens(B=2, T=10)
    g = lambda: torch.Generator().manual_seed(0)
    out_r, logits_r = generate(model, prompt, 20, use_cache=False, generator=g(), return_logits=True)
    out_c, logits_c = generate(model, prompt, 20, use_cache=True, generator=g(), return_logits=True)
    assert (logits_c - logits_r).abs().max() <= 1e-5 and torch.equal(out_c, out_r)
    out_s, logits_s = generate(model, prompt, 20, use_cache=True, generator=g(), overflow="restart",
                               return_logits=True)
    assert out_s.shape == (2, 30)
    # identical while the cache has room (10 + 6 = 16 positions), different context after the restart
    assert (logits_s[:, :7] - logits_r[:, :7]).abs().max() <= 1e-5
    assert (logits_s[:, 7:] - logits_r[:, 7:]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="overflow must be one of"):
        generate(model, prompt, 2, overflow="slide")


def test_generate_checks_arguments_and_keeps_the_mode():
    model = small()
    model.train()
    out = model.generate(tokens(B=1, T=3), 5, temperature=0)
    assert out.shape == (1, 8) and model.training
    with pytest.raises(ValueError, match="temperature"):
        model.generate(tokens(B=1, T=3), 5, temperature=-1)
    with pytest.raises(ValueError, match="prompt"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 5)


# --------------------------------------------------------------------------- loss and sampling


def test_next_token_loss_shifts_by_one_and_averages():
    logits = torch.randn(3, 6, 5)
    x = torch.randint(0, 5, (3, 6))
    expected = torch.stack([-torch.log_softmax(logits[b, t], -1)[x[b, t + 1]] for b in range(3) for t in range(5)])
    torch.testing.assert_close(next_token_loss(logits, x), expected.mean())
    with pytest.raises(ValueError, match="tokens must be a LongTensor"):
        next_token_loss(logits, x[:, :-1])
    with pytest.raises(ValueError, match="T >= 2"):
        next_token_loss(logits[:, :1], x[:, :1])


def test_sample_next_temperature_zero_is_argmax_and_top_k_one_too():
    logits = torch.randn(4, 9)
    assert torch.equal(sample_next(logits, 0.0), logits.argmax(-1))
    assert torch.equal(sample_next(logits, 2.0, top_k=1, generator=torch.Generator().manual_seed(0)),
                       logits.argmax(-1))


def test_sample_next_frequencies_follow_softmax_of_logits_over_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    n = 20000
    draws = sample_next(logits.expand(n, 4), temperature=0.5, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / n
    torch.testing.assert_close(freq, torch.softmax(logits[0] / 0.5, -1), atol=0.015, rtol=0)


def test_top_k_never_draws_outside_the_k_most_likely():
    logits = torch.randn(200, 20, generator=torch.Generator().manual_seed(3))
    draws = sample_next(logits, 5.0, top_k=3, generator=torch.Generator().manual_seed(0))
    top3 = logits.topk(3, dim=-1).indices
    assert (top3 == draws[:, None]).any(-1).all()


# --------------------------------------------------------------------------- masked LM and memorisation


def test_mask_tokens_hides_some_positions_and_targets_only_those():
    x = tokens(B=8, T=16)
    inputs, targets = mask_tokens(x, mask_id=11, rate=0.3, generator=torch.Generator().manual_seed(0))
    hidden = inputs == 11
    assert hidden.any(1).all()
    assert torch.equal(targets[hidden], x[hidden]) and (targets[~hidden] == IGNORE).all()
    assert torch.equal(inputs[~hidden], x[~hidden])
    logits = torch.randn(8, 16, 12)
    expected = F.cross_entropy(logits[hidden], x[hidden])
    torch.testing.assert_close(masked_lm_loss(logits, targets), expected)


def test_longest_copied_substring_against_brute_force():
    text = "the cat sat on the mat; a dog"
    for sample in ["a cat sat on a dog", "zzz", "", "the mat; a dogs", "ttt"]:
        brute = max((j - i for i in range(len(sample)) for j in range(i, len(sample) + 1)
                     if sample[i:j] in text), default=0)
        length, piece = longest_copied_substring(sample, text)
        assert length == brute and piece in text and len(piece) == length


def test_longest_copied_substring_on_repetitive_random_texts():
    """Small alphabets make long repeats and many equal suffix prefixes: the suffix array's hard cases."""
    rng = random.Random(0)
    for trial in range(60):
        alphabet = "ab" if trial % 2 else "abcé\n"
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 120)))
        if trial % 3 == 0:
            text = text * 3  # whole-text repeats
        sample = "".join(rng.choice(alphabet + "z") for _ in range(rng.randrange(0, 40)))
        brute = max(((j - i, -i) for i in range(len(sample)) for j in range(i, len(sample) + 1)
                     if sample[i:j] in text), default=(0, 0))
        length, piece = longest_copied_substring(sample, text)
        assert (length, piece) == (brute[0], sample[-brute[1]:-brute[1] + brute[0]]), (text, sample)


# --------------------------------------------------------------------------- experiments, benchmarks, explorer


@pytest.fixture
def tiny_runs(monkeypatch, tmp_path):
    from course_lib import experiments as E

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    return E, dict(steps=3, eval_every=2, eval_windows=4, batch_size=4)


def test_gpt_and_masked_lm_experiments_train_then_load_from_the_cache(tiny_runs):
    E, small_run = tiny_runs
    from course_lib.experiments.gpt import GPTRunConfig, pydoc_corpus

    V = pydoc_corpus().vocab_size
    sizes = dict(block_size=16, n_layer=1, n_head=2, n_embd=16)
    small_gpt = GPTRunConfig(model=GPTConfig(**sizes), **small_run)
    masked = {"warmup": 1, "window": None}
    for name, causal, vocab, extra in (("gpt", True, V, {}),
                                       ("masked_lm", False, V + 1, {"from_gpt": small_gpt, **masked}),
                                       ("masked_lm", False, V + 1, {"from_gpt": None, **masked})):
        model = GPTConfig(**sizes, causal=causal)
        first = E.run(name, model=model, progress=False, **small_run, **extra)
        again = E.run(name, model=model, progress=False, **small_run, **extra)
        assert not first.from_cache and again.from_cache
        assert first.model.config.vocab_size == vocab and first.model.config.causal == causal
        assert [s for s, _ in again.history.evals["val"]] == [2, 3] and set(again.history.evals) == {"train", "val"}
        assert E.experiment(name).notebook == "07_gpt"
    with pytest.raises(ValueError, match="needs causal=False"):
        E.run("masked_lm", model=GPTConfig(**sizes), progress=False, **small_run, from_gpt=None, warmup=1, window=None)
    with pytest.raises(ValueError, match="needs the GPT's sizes"):
        E.run("masked_lm", model=GPTConfig(**sizes, causal=False), progress=False, **small_run, warmup=1, window=None)


def test_masked_lm_starts_from_the_gpt_weights(tiny_runs, monkeypatch):
    E, small_run = tiny_runs
    from course_lib.experiments import gpt as G

    sizes = dict(block_size=16, n_layer=1, n_head=2, n_embd=16)
    small_gpt = G.GPTRunConfig(model=GPTConfig(**sizes), **small_run)
    trained = E.run("gpt", small_gpt, progress=False).model
    captured = {}
    real_loop = G.train_loop

    def spy(model, *args, **kwargs):  # the weights the masked LM starts its training from
        captured.update({k: v.clone() for k, v in model.state_dict().items()})
        return real_loop(model, *args, **kwargs)

    monkeypatch.setattr(G, "train_loop", spy)
    E.run("masked_lm", model=GPTConfig(**sizes, causal=False), from_gpt=small_gpt, warmup=1, window=None,
          progress=False, **small_run)
    V = trained.config.vocab_size
    for name, value in trained.state_dict().items():
        start = captured[name][:V] if name in ("wte.weight", "head.weight") else captured[name]
        assert torch.equal(start, value), name
    assert captured["wte.weight"].shape[0] == V + 1


def test_warmup_cosine_schedule():
    from course_lib.experiments.gpt import warmup_cosine

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    warmup_cosine(opt, warmup=4, steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0]) and lrs[4] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] < 0.05
    with pytest.raises(ValueError, match="warmup"):
        warmup_cosine(torch.optim.SGD([p], lr=1.0), warmup=12, steps=12)


def test_benchmark_helpers_return_positive_numbers():
    from course_lib.gpt.bench import cache_speedup, generation_speed, matmul_flops, training_flops_per_token

    assert matmul_flops(n=64, seconds=0.05) > 0
    cfg = GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_embd=16, n_head=2)
    assert training_flops_per_token(cfg) == 6 * (2 * 12 * 16 * 16 + 16 * 10) + 12 * 2 * 8 * 16
    speeds = generation_speed(small(), tokens(B=1, T=2), [3, 5], use_cache=True, repeats=2)
    assert len(speeds) == 2 and min(speeds) > 0
    cached, plain = cache_speedup(small(), tokens(B=1, T=2), [3, 5, 7], repeats=2)
    assert len(cached) == len(plain) == 3 and min(cached + plain) > 0
    with pytest.raises(ValueError, match="repeats"):
        cache_speedup(small(), tokens(B=1, T=2), [3], repeats=0)


def test_sampler_explorer_shows_each_step_distribution_and_follows_its_controls():
    from course_lib.data.corpus import CharCorpus
    from course_lib.widgets.sampler import sample_steps, sampler_explorer, sampler_figure

    corpus = CharCorpus(text="abcab cab\nabca " * 20)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=corpus.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    result = sample_steps(model, corpus, "ab", length=10, temperature=1.0, top_k=2, seed=0)
    assert result["probs"].shape == (10, corpus.vocab_size) and len(result["text"]) == 10
    torch.testing.assert_close(result["probs"].sum(-1), torch.ones(10))
    assert ((result["probs"] > 0).sum(-1) <= 2).all()  # top-k = 2 leaves two candidates
    assert (result["probs"][torch.arange(10), result["chosen"]] > 0).all()
    greedy = sample_steps(model, corpus, "ab", length=10, temperature=0.0)
    assert (greedy["probs"].max(-1).values == 1).all()
    fig = sampler_figure(result, corpus)
    assert fig.axes[0].get_xlabel().startswith("generated character") and len(fig.axes) == 2  # with colour bar
    ex = sampler_explorer(model, corpus, prompt="ab", length=10)
    before = ex.png()
    ex.controls["temperature"].value = 0.0
    assert ex.last_result["text"] == greedy["text"] and ex.png() != before
    ex.controls["prompt"].value = "ab€"
    assert "never uses" in str(ex.last_error)
