"""The framework's exercise kinds beyond "a function returning tensors", each proven on a toy
exercise registered only for these tests (under the IDs 06.2, 07.1 and 07.2, in place of their
real checkers in checks/nb06 and nb07; the registry is restored after each test):

* a module class (TinyBlock, the shape of 06.2's EncoderBlock),
* a function returning a scalar (next-token loss, 07.1),
* a sampler judged statistically (sample_next, 07.2), with the measured rate at
  which its goodness-of-fit test rejects a correct sampler.

Each kind has its catalogue: wrong answers rejected with their hints, valid variants
accepted with full points.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from catalogue import assert_full_points, assert_rejected
from course_lib.checks import CheckContext, Misconception, checker, run_check
from course_lib.checks.framework import SAMPLER_ALPHA, chi_square_pvalue, registry

SEEDS = (0, 1)


@pytest.fixture(autouse=True)
def toy_registry(monkeypatch):
    monkeypatch.setattr(registry, "_CHECKERS", dict(registry._CHECKERS))
    _register_toys()


# =================================================================== module class (06.2's kind)


class TinyBlock(nn.Module):
    """The toy reference: x + scale * ff(norm(x)), a pre-norm residual feed-forward block."""

    def __init__(self, d_model, d_ff):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))

    def forward(self, x, scale=1.0):
        return x + scale * self.ff(self.norm(x))


POST_NORM = Misconception(
    "post-norm", "The normalisation seems to come after the residual sum (post-norm): this block normalises "
    "the input of the feed-forward layer, inside the residual branch. Look at where norm is applied in forward().",
    lambda ref, x, scale=1.0: ref.norm(x + scale * ref.ff(x)))
NO_RESIDUAL = Misconception(
    "no residual", "The output seems to lack the residual connection: the block adds its branch to its input. "
    "Look at what forward() returns.",
    lambda ref, x, scale=1.0: scale * ref.ff(ref.norm(x)))
IGNORES_SCALE = Misconception(
    "ignores scale", "The `scale` argument of forward() seems to be ignored: it multiplies the residual branch.",
    lambda ref, x, scale=1.0: x + ref.ff(ref.norm(x)))


def _check_tiny_block(t: CheckContext, cls):
    d, f = t.sizes(2, 3, 8)
    with torch.random.fork_rng():
        torch.manual_seed(t.seed)
        reference = TinyBlock(d, f)
    what = f"TinyBlock({d}, {f})"
    module = t.build_module(cls, (d, f), what=what)
    t.expect_same_submodules(module, reference, what=what)
    cases = [((t.randn(2, 5, d),), {}), ((t.randn(1, 3, d),), {"scale": 0.5})]
    t.compare_module(module, reference, cases, what=what)
    t.module_gradients(module, reference, (t.randn(2, 4, d),), what=what)
    t.module_float64(module, reference, (t.randn(2, 3, d),), what=what)


class RenamedNorm(TinyBlock):
    def __init__(self, d_model, d_ff):
        nn.Module.__init__(self)
        self.layer_norm = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))

    def forward(self, x, scale=1.0):
        return x + scale * self.ff(self.layer_norm(x))


class PostNorm(TinyBlock):
    def forward(self, x, scale=1.0):
        return self.norm(x + scale * self.ff(x))


class NoResidual(TinyBlock):
    def forward(self, x, scale=1.0):
        return scale * self.ff(self.norm(x))


class IgnoresScale(TinyBlock):
    def forward(self, x, scale=1.0):
        return x + self.ff(self.norm(x))


class Float32Result(TinyBlock):
    def forward(self, x, scale=1.0):
        return (x + scale * self.ff(self.norm(x))).float()


class Detached(TinyBlock):
    def forward(self, x, scale=1.0):
        return (x + scale * self.ff(self.norm(x))).detach()


class NotAModule:
    def __init__(self, d_model, d_ff):
        self.d_model = d_model


MODULE_WRONG = {
    "a submodule named differently": (RenamedNorm, "`norm`"),
    "post-norm": (PostNorm, "post-norm"),
    "no residual": (NoResidual, "residual connection"),
    "ignores scale": (IgnoresScale, "`scale` argument"),
    "casts the result to float32": (Float32Result, "not float64 for float64 inputs"),
    "detaches the output": (Detached, "cut the graph"),
    "not an nn.Module": (NotAModule, "subclass torch.nn.Module"),
}


class FunctionalRelu(TinyBlock):
    def forward(self, x, scale=1.0):
        hidden = torch.relu(self.ff[0](self.norm(x)))
        return x + scale * self.ff[2](hidden)


class ManualLayerNorm(TinyBlock):
    def forward(self, x, scale=1.0):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        normed = (x - mean) / torch.sqrt(var + self.norm.eps) * self.norm.weight + self.norm.bias
        return x + scale * self.ff(normed)


MODULE_VALID = {"the reference": TinyBlock, "functional relu": FunctionalRelu, "layer norm by hand": ManualLayerNorm}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(MODULE_WRONG))
def test_module_wrong_answer_is_rejected_with_its_hint(name, seed):
    cls, hint = MODULE_WRONG[name]
    assert_rejected("06.2", cls, hint, seed, name)


def test_module_hint_names_the_missing_and_the_extra_submodules():
    result = run_check("06.2", RenamedNorm, seed=0)
    failed = [s for s in result.subchecks if s.status == "failed"][0]
    assert "missing `norm`" in failed.message and "not in the reference `layer_norm`" in failed.message


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(MODULE_VALID))
def test_module_valid_variant_gets_full_points(name, seed):
    assert_full_points("06.2", MODULE_VALID[name], seed, name)


# =================================================================== scalar function (07.1's kind)


def _loss(logits, tokens):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))


NO_SHIFT = Misconception("no shift", "Each position seems to be scored against its own token: position t predicts "
                         "the *next* token, so the logits of positions 0 .. T-2 meet the tokens 1 .. T-1. Look at "
                         "how you line the two up.",
                         lambda logits, tokens: F.cross_entropy(logits.flatten(0, 1), tokens.flatten()))
SHIFT_REVERSED = Misconception("shifted the wrong way", "The shift seems reversed: the logits at position t "
                               "predict the token at t + 1, not at t - 1. Look at which side you drop a position.",
                               lambda logits, tokens: F.cross_entropy(logits[:, 1:].flatten(0, 1),
                                                                      tokens[:, :-1].flatten()))
SUMS = Misconception("sums", "The loss seems to be summed over the positions: the contract asks for the mean, "
                     "which does not grow with the batch or the length. Look at the reduction.",
                     lambda logits, tokens: F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(),
                                                            reduction="sum"))


def _check_loss(t: CheckContext, fn):
    def make(B, T, V, dtype=torch.float32):
        return t.randn(B, T, V, dtype=dtype), t.randint(0, V, (B, T))

    B, T, V = t.sizes(3, 2, 9)
    args0 = make(B, T, V)
    t.scalar_opening(fn, args0, what=f"next_token_loss(logits {tuple(args0[0].shape)}, tokens)")

    @t.subcheck("equals the mean cross-entropy of the next token (several shapes)", weight=2.0, essential=True)
    def _():
        for args in (args0, make(*t.sizes(3, 2, 9)), make(1, 2, t.random.randint(3, 9))):
            t.compare(fn, _loss, args, what=f"next_token_loss(logits {tuple(args[0].shape)}, tokens)")

    args64 = make(*t.sizes(3, 2, 9), dtype=torch.float64)
    t.float64_subcheck(fn, _loss, args64, what="next_token_loss of float64 logits")
    t.gradient_subcheck(fn, _loss, make(*t.sizes(3, 2, 9)), wrt=(0,), arg_names=("logits", "tokens"),
                        what="next_token_loss(logits, tokens)")


LOSS_WRONG = {
    "no shift": (lambda logits, tokens: F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1)),
                 "predicts the *next* token"),
    "shifted the wrong way": (lambda logits, tokens: F.cross_entropy(logits[:, 1:].reshape(-1, logits.shape[-1]),
                                                                     tokens[:, :-1].reshape(-1)), "shift seems reversed"),
    "sums instead of mean": (lambda logits, tokens: F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                                    tokens[:, 1:].reshape(-1), reduction="sum"),
                             "summed over the positions"),
    "returns .item()": (lambda logits, tokens: _loss(logits, tokens).item(), "Python number"),
    "no reduction": (lambda logits, tokens: F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:],
                                                            reduction="none"), "a 0-d tensor"),
}
LOSS_VALID = {
    "cross_entropy of the shifted views": _loss,
    "log_softmax and gather": lambda logits, tokens: -torch.log_softmax(logits[:, :-1], -1).gather(
        -1, tokens[:, 1:, None]).mean(),
    "cross_entropy over the class axis": lambda logits, tokens: F.cross_entropy(logits[:, :-1].transpose(1, 2),
                                                                                tokens[:, 1:]),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(LOSS_WRONG))
def test_scalar_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = LOSS_WRONG[name]
    assert_rejected("07.1", fn, hint, seed, name)


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(LOSS_VALID))
def test_scalar_valid_variant_gets_full_points(name, seed):
    assert_full_points("07.1", LOSS_VALID[name], seed, name)


# =================================================================== sampler (07.2's kind)


def _probs(logits, temperature=1.0, top_k=None):
    """What sample_next samples from: softmax(logits / temperature) over the top_k largest."""
    if top_k is not None:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits / temperature, dim=-1)


def _sample(logits, temperature=1.0, top_k=None, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    return torch.multinomial(_probs(logits, temperature, top_k), 1, generator=generator).squeeze(-1)


TIMES_T = Misconception("multiplies by the temperature", "The logits seem to be multiplied by the temperature: "
                        "they are divided by it (a low temperature sharpens the distribution). Look at the line "
                        "that applies the temperature.",
                        lambda logits, temperature=1.0, top_k=None: _probs(logits * temperature ** 2, temperature,
                                                                           top_k))
NO_T = Misconception("ignores the temperature", "The temperature seems to be ignored: the logits are divided by "
                     "it before the softmax.", lambda logits, temperature=1.0, top_k=None: _probs(logits, 1.0, top_k))
NO_TOP_K = Misconception("ignores top_k", "top_k seems to be ignored: only the k most likely tokens may be drawn; "
                         "look at how you remove the others before sampling.",
                         lambda logits, temperature=1.0, top_k=None: _probs(logits, temperature, None))


def _check_sampler(t: CheckContext, fn):
    R, V = t.random.randint(2, 4), t.random.randint(5, 9)
    logits = t.randn(R, V, scale=1.5)
    t.opening(fn, (logits,), kwargs={"generator": torch.Generator().manual_seed(0)}, what="sample_next(logits)",
              shapes=(R,), dtype=torch.long, dtype_title="returns token ids (torch.long)",
              shape_hints=["One token id per row of logits: return the (B,) sampled ids, not the (B, V) "
                           "probabilities."])

    @t.subcheck("temperature 0 gives the argmax", weight=0.5)
    def _():
        t.compare(fn, _sample, (logits,), kwargs={"temperature": 0.0}, exact=True, what="sample_next(logits, 0.0)")

    for kwargs, title in (({}, "frequencies match softmax(logits)"),
                          ({"temperature": 0.5}, "frequencies match softmax(logits / temperature)"),
                          ({"temperature": 2.0, "top_k": 3}, "top_k keeps only the k most likely tokens")):
        t.sampler_subcheck(fn, logits, _probs(logits, **kwargs), kwargs=kwargs, what=f"sample_next(logits, {kwargs})",
                           title=title, essential=not kwargs)
    many = logits.repeat(40, 1)  # two unseeded streams of draws over 80+ rows cannot agree by chance
    t.expect_reproducible(fn, (many,), kwargs={"temperature": 1.0}, what="sample_next(logits)")


SAMPLER_WRONG = {
    "always the argmax": (lambda logits, temperature=1.0, top_k=None, generator=None: logits.argmax(-1),
                          "Compare the distribution you sample from"),
    "multiplies by the temperature": (
        lambda logits, temperature=1.0, top_k=None, generator=None:
        _sample(logits * temperature ** 2, temperature, top_k, generator) if temperature else logits.argmax(-1),
        "multiplied by the temperature"),
    "ignores the temperature": (
        lambda logits, temperature=1.0, top_k=None, generator=None:
        _sample(logits, 1.0, top_k, generator) if temperature else logits.argmax(-1), "temperature seems to be ignored"),
    "ignores top_k": (lambda logits, temperature=1.0, top_k=None, generator=None:
                      _sample(logits, temperature, None, generator), "top_k seems to be ignored"),
    "ignores the generator": (lambda logits, temperature=1.0, top_k=None, generator=None:
                              _sample(logits, temperature, top_k, None), "pass it on"),
    "returns probabilities": (lambda logits, temperature=1.0, top_k=None, generator=None:
                              _probs(logits, temperature or 1.0, top_k), "not the (B, V) probabilities"),
}
SAMPLER_VALID = {
    "multinomial": _sample,
    "inverse CDF with torch.rand": lambda logits, temperature=1.0, top_k=None, generator=None: (
        logits.argmax(-1) if temperature == 0 else
        (torch.rand(logits.shape[0], 1, generator=generator, dtype=torch.float64)
         > _probs(logits, temperature, top_k).double().cumsum(-1)).sum(-1).clamp(max=logits.shape[-1] - 1)),
    "Gumbel-max": lambda logits, temperature=1.0, top_k=None, generator=None: (
        logits.argmax(-1) if temperature == 0 else
        (torch.log(_probs(logits, temperature, top_k)) - torch.log(-torch.log(
            torch.rand(logits.shape, generator=generator)))).argmax(-1)),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(SAMPLER_WRONG))
def test_sampler_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = SAMPLER_WRONG[name]
    assert_rejected("07.2", fn, hint, seed, name)


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(SAMPLER_VALID))
def test_sampler_valid_variant_gets_full_points(name, seed):
    assert_full_points("07.2", SAMPLER_VALID[name], seed, name)


def false_rejection_rate(trials: int, alpha: float, draws: int = 2000, rows: int = 3, V: int = 7, seed: int = 0):
    """The fraction of ``trials`` sampler sub-checks (``rows`` distributions of ``V`` tokens,
    ``draws`` draws each, as in the checker) that reject a correct sampler: its counts are
    drawn from the true distribution; any row rejected rejects the sub-check."""
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(rows, V, generator=gen) * 1.5, -1)
    rejected = 0
    for start in range(0, trials, 100000):
        n = min(100000, trials - start)
        # multinomial counts drawn exactly, token after token: count_v ~ Binomial(draws left, p_v / p left)
        counts = torch.zeros(n, rows, V, dtype=torch.float64)
        left = torch.full((n, rows), float(draws), dtype=torch.float64)
        p_left = torch.ones(rows, dtype=torch.float64)
        for v in range(V - 1):
            share = (probs[:, v].double() / p_left).clamp(max=1.0).expand(n, rows).contiguous()
            counts[..., v] = torch.binomial(left, share, generator=gen)
            left = left - counts[..., v]
            p_left = p_left - probs[:, v].double()
        counts[..., V - 1] = left
        p = torch.stack([chi_square_pvalue(counts[:, r], probs[r]) for r in range(rows)], -1)  # (n, rows)
        rejected += int((p < alpha).any(-1).sum())
    return rejected / trials


def test_the_goodness_of_fit_test_rarely_rejects_a_correct_sampler():
    """At the checker's level (1e-6 per distribution, 3 distributions per sub-check) a correct sampler
    is rejected less than once in 10,000 checks: no rejection in 100,000 trials here, and
    `python tests/test_checks_kinds.py` counts over 10^6. At a level of 0.05 the rate is
    1 - 0.95^3 = 0.143: the test is calibrated, neither lenient nor strict."""
    assert SAMPLER_ALPHA == 1e-6
    assert false_rejection_rate(100000, SAMPLER_ALPHA) == 0
    assert 0.13 < false_rejection_rate(100000, 0.05, seed=1) < 0.155


def test_batched_and_single_p_values_agree():
    probs = torch.softmax(torch.randn(6), -1)
    counts = torch.multinomial(probs, 500, replacement=True).bincount(minlength=6)
    batch = torch.stack([counts, counts.flip(0)])
    assert torch.allclose(chi_square_pvalue(batch, probs), torch.stack(
        [chi_square_pvalue(counts, probs), chi_square_pvalue(counts.flip(0), probs)]))
    assert float(chi_square_pvalue(counts, probs)) > 1e-6
    assert float(chi_square_pvalue(counts.flip(0), probs)) < 1e-6 or torch.allclose(probs, probs.flip(0), atol=0.02)


def _register_toys():
    checker("06.2", misconceptions=[POST_NORM, NO_RESIDUAL, IGNORES_SCALE])(_check_tiny_block)
    checker("07.1", misconceptions=[NO_SHIFT, SHIFT_REVERSED, SUMS])(_check_loss)
    checker("07.2", misconceptions=[TIMES_T, NO_T, NO_TOP_K])(_check_sampler)


if __name__ == "__main__":
    import time

    for trials, alpha in ((10 ** 6, SAMPLER_ALPHA), (10 ** 6, 1e-4), (2 * 10 ** 5, 0.01)):
        start = time.process_time()
        rate = false_rejection_rate(trials, alpha, seed=7)
        print(f"alpha {alpha:g} per row, 3 rows: {rate * trials:.0f} of {trials} correct samplers rejected "
              f"(rate {rate:.2e}; {time.process_time() - start:.0f} CPU-s)")
