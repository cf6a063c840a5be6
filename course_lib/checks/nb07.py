"""Checks for notebook 07 (GPT): 07.1 the next-token loss, 07.2 sampling the next token.

07.1 ``next_token_loss(logits, tokens) -> 0-d tensor``: logits (B, T, V) produced
from tokens (B, T); the mean cross-entropy of logits[:, :-1] against tokens[:, 1:]
(a scalar still attached to the graph).

07.2 ``sample_next(logits, temperature=1.0, top_k=None, generator=None) -> (B,)``:
temperature 0 means argmax; top_k keeps the k most likely; the samples are drawn
with ``generator`` from softmax(logits / temperature). Judged statistically: each
test distribution is sampled 2,000 times in one call with a seeded generator and
its counts go through a chi-square test at level 1e-6 (course_lib/checks/framework/kinds.py);
tests/test_checks_07.py measures the rate at which a correct sampler is rejected.
The references are course_lib.gpt.sampling's.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from ..gpt.sampling import next_token_loss as _loss_reference
from ..gpt.sampling import sample_next as _sample_reference
from ..gpt.sampling import sampling_probs as _probs_reference
from .framework import CheckContext, CheckFailure, Misconception, checker
from .framework.results import NotImplementedYet, TimedOut

# =================================================================== 07.1 next_token_loss


def _flat(x):
    return x.reshape(-1, x.shape[-1]) if x.dim() == 3 else x.reshape(-1)


NO_SHIFT = Misconception(
    "no shift",
    "Each position seems to be scored against its own token: the logits at position t predict the *next* "
    "token, so the logits of positions 0 .. T-2 meet the tokens of positions 1 .. T-1. Look at how you line "
    "the two up.",
    lambda logits, tokens: F.cross_entropy(_flat(logits), _flat(tokens)),
)
SHIFT_REVERSED = Misconception(
    "shift reversed",
    "The shift seems reversed: the logits at position t predict the token at t + 1, not the one at t - 1. "
    "Look at which end of the logits and which end of the tokens you drop.",
    lambda logits, tokens: F.cross_entropy(_flat(logits[:, 1:]), _flat(tokens[:, :-1])),
)
ROLLED = Misconception(
    "wraps around",
    "The last position seems to be scored too, against the first token (a roll wraps around): the last "
    "logits have no next token to predict, so B * (T - 1) positions count, not B * T. Drop the last "
    "position instead of rolling.",
    lambda logits, tokens: F.cross_entropy(_flat(logits), _flat(tokens.roll(-1, dims=1))),
)
SUMS = Misconception(
    "sums",
    "The loss seems to be summed over the positions: the contract asks for the mean over every predicted "
    "position, which does not grow with the batch or the length. Look at the reduction.",
    lambda logits, tokens: F.cross_entropy(_flat(logits[:, :-1]), _flat(tokens[:, 1:]), reduction="sum"),
)
SEQUENCE_SUMS = Misconception(
    "mean of per-sequence sums",
    "The loss seems to sum over the positions of each sequence and average over the batch only: the "
    "contract averages over every predicted position of every sequence (B * (T - 1) terms). Look at the "
    "reduction.",
    lambda logits, tokens: F.cross_entropy(_flat(logits[:, :-1]), _flat(tokens[:, 1:]), reduction="sum")
    / logits.shape[0],
)
FIRST_SEQUENCE = Misconception(
    "first sequence only",
    "Only the first sequence of the batch seems to count: the mean runs over every sequence of the batch. "
    "Look for an index [0] that drops the batch axis.",
    lambda logits, tokens: F.cross_entropy(logits[0, :-1], tokens[0, 1:]),
)
SOFTMAX_FIRST = Misconception(
    "softmax before cross_entropy",
    "The logits seem to go through a softmax before the cross-entropy: F.cross_entropy applies log_softmax "
    "itself and expects raw logits, so a softmax first squashes them into 0 .. 1 and the loss barely moves.",
    lambda logits, tokens: F.cross_entropy(_flat(torch.softmax(logits[:, :-1], -1)), _flat(tokens[:, 1:])),
)
CLASSES_ON_TIME = Misconception(
    "class axis is the time axis",
    "F.cross_entropy reads the classes on axis 1 of a 3-d input: given (B, T - 1, V) it takes the T - 1 "
    "positions for the classes. Flatten the logits to (B * (T - 1), V) and the targets to (B * (T - 1),), or "
    "move the vocabulary axis to position 1.",
    lambda logits, tokens: F.cross_entropy(logits[:, :-1], tokens[:, 1:]),
    error=r"Expected target size",
)
VIEW_OF_SLICE = Misconception(
    "view of a slice",
    "`.view` cannot flatten logits[:, :-1]: dropping the last position leaves a tensor whose rows are not "
    "contiguous in memory. Use `.reshape` (or `.contiguous()` first).",
    None,
    error=r"view size is not compatible",
)
KEEPS_AXIS = Misconception(
    "keeps an axis",
    "Your loss has shape (1,): a 0-d tensor is expected (what .mean() over everything returns). Look for "
    "keepdim=True, an unsqueeze, or a list of one loss turned into a tensor.",
    lambda logits, tokens: _loss_reference(logits, tokens).reshape(1),
)
LOG_OF_SOFTMAX = Misconception(
    "log of softmax",
    "The loss becomes infinite when a target's probability underflows to 0: taking torch.log of a softmax "
    "loses the tiny probabilities of large logits. torch.log_softmax (or F.cross_entropy) computes the "
    "log-probabilities stably.",
    lambda logits, tokens: -torch.log(torch.softmax(logits[:, :-1], -1)).gather(-1, tokens[:, 1:, None]).mean(),
)

LOSS_MISCONCEPTIONS = [NO_SHIFT, SHIFT_REVERSED, ROLLED, SUMS, SEQUENCE_SUMS, FIRST_SEQUENCE, SOFTMAX_FIRST,
                       CLASSES_ON_TIME, VIEW_OF_SLICE, KEEPS_AXIS, LOG_OF_SOFTMAX]


def _loss_args(t: CheckContext, B: int, T: int, V: int, dtype=torch.float32, scale: float = 2.0):
    """The argument factory: logits (B, T, V) and tokens (B, T) of a vocabulary of V."""
    return t.randn(B, T, V, dtype=dtype, scale=scale), t.randint(0, V, (B, T))


def _describe(args) -> str:
    return f"next_token_loss(logits {tuple(args[0].shape)}, tokens {tuple(args[1].shape)})"


@checker("07.1", misconceptions=LOSS_MISCONCEPTIONS)
def check_next_token_loss(t: CheckContext, next_token_loss) -> None:
    """Sub-checks of 07.1, cheap to deep; weights are shares of the exercise's points."""
    B, T, V = t.sizes(3, 2, 8)
    args0 = _loss_args(t, B, T, V)
    t.scalar_opening(next_token_loss, args0, what=_describe(args0), weights=(0.25, 0.25, 0.25))

    @t.subcheck("equals the mean next-token cross-entropy (several shapes)", weight=2.0, essential=True)
    def _():
        b, tt, v = t.sizes(3, 2, 8)
        for args in (args0, _loss_args(t, b, tt, v), _loss_args(t, 1, 2, t.random.randint(3, 9)),
                     _loss_args(t, t.random.randint(2, 4), t.random.randint(9, 16), t.random.randint(20, 40))):
            t.compare(next_token_loss, _loss_reference, args, what=_describe(args))

    @t.subcheck("stays finite and exact for large logits and unlikely targets", weight=0.5)
    def _():
        logits = t.randn(B, T, V, scale=100.0)
        tokens = t.randint(0, V, (B, T))
        tokens[:, 1:] = logits[:, :-1].argmin(-1)  # every target is the least likely token of its position
        t.compare(next_token_loss, _loss_reference, (logits, tokens), what=_describe((logits, tokens)),
                  finite=True, finite_hints={0: LOG_OF_SOFTMAX.hint})

    t.gradient_subcheck(next_token_loss, _loss_reference, _loss_args(t, *t.sizes(3, 2, 8)), wrt=(0,),
                        arg_names=("logits", "tokens"), what="next_token_loss(logits, tokens)", weight=0.75)
    t.float64_subcheck(next_token_loss, _loss_reference, _loss_args(t, *t.sizes(3, 2, 8), dtype=torch.float64),
                       what="next_token_loss of float64 logits")


# =================================================================== 07.2 sample_next
# A sampler misconception's impl(logits, temperature, top_k) returns the probabilities it samples from
# (it takes no generator, so it is never mistaken for a result in the opening sub-checks).


def _keep(logits, k, largest=True):
    """logits with all but the k largest (smallest) of each row set to -inf."""
    idx = logits.topk(k, dim=-1, largest=largest).indices  # (B, k)
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, idx, True)
    return logits.masked_fill(~keep, float("-inf"))


def _shifted_k(shift):
    def impl(logits, temperature=1.0, top_k=None):
        if top_k is None:
            return _probs_reference(logits, temperature)
        return torch.softmax(_keep(logits, top_k + shift) / temperature, -1)

    return impl


def _uniform(logits, temperature=1.0, top_k=None):
    kept = _keep(logits, top_k) if top_k is not None else torch.zeros_like(logits)
    return torch.softmax(torch.where(torch.isinf(kept), kept, torch.zeros_like(kept)), -1)


def _zero_not_inf(logits, temperature=1.0, top_k=None):
    if top_k is None:
        return _probs_reference(logits, temperature)
    kept = _keep(logits, top_k)
    return torch.softmax(torch.where(torch.isinf(kept), torch.zeros_like(kept), kept) / temperature, -1)


TIMES_T = Misconception(
    "multiplies by the temperature",
    "The logits seem to be multiplied by the temperature: they are divided by it, so that a temperature "
    "below 1 sharpens the distribution and one above 1 flattens it. Look at the line that applies it.",
    lambda logits, temperature=1.0, top_k=None: _probs_reference(logits * temperature ** 2, temperature, top_k),
)
IGNORES_T = Misconception(
    "ignores the temperature",
    "The temperature seems to be ignored: the logits are divided by it before the softmax.",
    lambda logits, temperature=1.0, top_k=None: _probs_reference(logits, 1.0, top_k),
)
IGNORES_TOP_K = Misconception(
    "ignores top_k",
    "top_k seems to be ignored: only the k most likely tokens of each row may be drawn. Look at how you "
    "remove the others before sampling.",
    lambda logits, temperature=1.0, top_k=None: _probs_reference(logits, temperature, None),
)
LEAST_LIKELY = Misconception(
    "keeps the k least likely",
    "top_k seems to keep the k *least* likely tokens: keep the k largest logits (torch.topk's default).",
    lambda logits, temperature=1.0, top_k=None: (
        _probs_reference(logits, temperature) if top_k is None
        else torch.softmax(_keep(logits, top_k, largest=False) / temperature, -1)),
)
K_PLUS_ONE = Misconception(
    "keeps k + 1 tokens",
    "top_k seems to keep one token too many: exactly the k most likely tokens may be drawn. Look at which "
    "value you compare the logits with (the k-th largest is at index k - 1).",
    _shifted_k(1),
)
K_MINUS_ONE = Misconception(
    "keeps k - 1 tokens",
    "top_k seems to keep one token too few: the k-th most likely token must stay possible. Look at whether "
    "you compare with < or <= the k-th largest value, and at the index you take it from.",
    _shifted_k(-1),
)
ZERO_NOT_INF = Misconception(
    "removed tokens get logit 0",
    "Tokens outside the top k are still drawn: setting their *logits* to 0 leaves them probability "
    "exp(0) / Z after the softmax. A removed token needs a logit of -inf (or a probability of 0).",
    _zero_not_inf,
)
UNIFORM = Misconception(
    "uniform sampling",
    "Every allowed token seems to be drawn equally often: tokens must be drawn with their probabilities "
    "(torch.multinomial draws an index with probability proportional to its weight), not uniformly.",
    _uniform,
)
ALWAYS_ARGMAX = Misconception(
    "always the argmax",
    "Your function always returns the most likely token: that is temperature 0 only. For a temperature "
    "above 0, draw a token at random with the softmax probabilities (torch.multinomial with the generator).",
    lambda logits, temperature=1.0, top_k=None: F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype),
)
FROM_LOGITS = Misconception(
    "samples from the logits",
    "torch.multinomial got negative weights: it draws an index with probability proportional to its input, "
    "so it needs probabilities (or non-negative weights), not raw logits. Apply the softmax first.",
    None,
    error=r"probability tensor contains either|invalid multinomial distribution",
)
NO_GENERATOR_ARG = Misconception(
    "no generator argument",
    "Your function does not accept the `generator` keyword argument: keep the signature "
    "sample_next(logits, temperature=1.0, top_k=None, generator=None).",
    None,
    error=r"unexpected keyword argument",
)
SAMPLER_MISCONCEPTIONS = [TIMES_T, IGNORES_T, IGNORES_TOP_K, LEAST_LIKELY, K_PLUS_ONE, K_MINUS_ONE, ZERO_NOT_INF,
                          UNIFORM, ALWAYS_ARGMAX, FROM_LOGITS, NO_GENERATOR_ARG]

ZERO_T_HINT = ("At temperature 0 your function fails: dividing the logits by 0 gives inf and NaN probabilities. "
               "Temperature 0 is the limit of ever sharper distributions, the argmax: handle it before dividing.")
ARGMAX_HINT = ("At temperature 0 the result must be the most likely token of each row (the argmax), with no "
               "sampling at all.")
SHAPE_HINT = ("One token id per row of logits: return a tensor of shape (B,), not (B, 1) (torch.multinomial "
              "keeps an axis: squeeze it) and not the (B, V) probabilities.")
SAMPLE_DRAWS = 2000


@checker("07.2", misconceptions=SAMPLER_MISCONCEPTIONS, mutation_weight=0.5)
def check_sample_next(t: CheckContext, sample_next) -> None:
    """Sub-checks of 07.2, cheap to deep; weights are shares of the exercise's points."""
    R, V = 3, t.random.randint(6, 9)
    logits = t.randn(R, V, scale=1.5)  # (R, V): three distributions, no ties
    t.opening(sample_next, (logits,), kwargs={"generator": torch.Generator().manual_seed(t.seed or 0)},
              what=f"sample_next(logits {tuple(logits.shape)})", shapes=(R,), dtype=torch.long,
              dtype_title="returns token ids (torch.long)", shape_hints=[SHAPE_HINT])

    t.sampler_subcheck(sample_next, logits, _probs_reference(logits), what="sample_next(logits)",
                       title="the frequencies match softmax(logits)", weight=1.0, essential=True,
                       draws=SAMPLE_DRAWS)

    @t.subcheck("temperature 0 gives the most likely token (argmax)", weight=0.5)
    def _():
        batch = torch.cat([logits, t.randn(2, V, scale=1.5)])  # (R + 2, V)
        expected = _sample_reference(batch, temperature=0.0)
        what = f"sample_next(logits {tuple(batch.shape)}, temperature=0.0)"
        try:
            out = t.call(sample_next, batch.clone(), temperature=0.0, generator=torch.Generator().manual_seed(1))
        except (NotImplementedYet, TimedOut):
            raise
        except CheckFailure as failure:
            if re.search(r"inf|nan|zero", failure.message, flags=re.IGNORECASE):
                t.fail(failure.message, ZERO_T_HINT)
            raise
        out = t.expect_tensor(out, what)
        t.expect_shape(out, expected.shape, what, hint=SHAPE_HINT)
        t.expect_equal(out, expected, what, hint=ARGMAX_HINT, reference="the argmax")

    for kwargs, title, weight in (
            ({"temperature": 0.5}, "the frequencies match softmax(logits / temperature)", 0.75),
            ({"top_k": 3}, "top_k keeps only the k most likely tokens, renormalised", 0.75),
            ({"temperature": 2.0, "top_k": 3}, "top_k and temperature together", 0.5)):
        t.sampler_subcheck(sample_next, logits, _probs_reference(logits, **kwargs), kwargs=kwargs,
                           what=f"sample_next(logits, {', '.join(f'{k}={v}' for k, v in kwargs.items())})",
                           title=title, weight=weight, draws=SAMPLE_DRAWS)
    many = logits.repeat(40, 1)  # (40 R, V): two different streams of draws cannot agree by chance
    t.expect_reproducible(sample_next, (many,), kwargs={"temperature": 1.0, "top_k": 4},
                          what=f"sample_next(logits {tuple(many.shape)}, temperature=1.0, top_k=4)")
