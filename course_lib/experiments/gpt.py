"""The trained models of notebook 07: a character-level GPT and a masked LM on Python's documentation.

Both read ``pydoc_corpus()`` (CPython's ``pydoc_data.topics``, last 10% held
out). The text differs between Python versions, so its SHA-256 is part of
each cache key. The masked LM starts from the GPT's trained weights (the same
stack: only the mask and the objective differ), so its key holds the GPT's
run config too. Notebook 10 reuses the GPT through the cache:

    from course_lib import experiments
    run = experiments.run("gpt")              # CachedRun: model, history, from_cache
    run.history.evals["val"]                  # [(step, validation loss in nats per character)]
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from dataclasses import dataclass

import torch

from ..data.corpus import CharCorpus
from ..gpt import GPT, GPTConfig, mask_tokens, masked_lm_loss, next_token_loss
from ..train import CachedRun, cached_training, device, train_loop
from .core import config_dict, register

__all__ = ["pydoc_corpus", "corpus_sha256", "GPTRunConfig", "MaskedLMRunConfig", "GPT_RUN", "MASKED_LM_RUN",
           "gpt", "masked_lm", "mask_id", "warmup_cosine"]


@functools.lru_cache(maxsize=2)
def pydoc_corpus(val_fraction: float = 0.1) -> CharCorpus:
    """CharCorpus of pydoc_text(), the last `val_fraction` held out (built once per process)."""
    return CharCorpus(val_fraction=val_fraction)


def corpus_sha256(corpus: CharCorpus) -> str:
    """First 16 hex digits of the SHA-256 of the corpus text (it changes between Python versions)."""
    return hashlib.sha256(corpus.text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class GPTRunConfig:
    """The GPT of notebook 07. model.vocab_size is replaced by the corpus's own. AdamW(lr), cosine schedule."""

    model: GPTConfig = GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=64)
    batch_size: int = 8
    steps: int = 1000
    lr: float = 1e-2
    eval_every: int = 100
    eval_windows: int = 64
    seed: int = 0


@dataclass(frozen=True)
class MaskedLMRunConfig:
    """The masked LM of notebook 07: the same stack without the causal mask; vocab + 1 for [MASK].

    from_gpt: start from the weights of ``gpt(from_gpt)`` with the same seed
    (model must then have the GPT's sizes), the [MASK] embedding new;
    None trains from scratch. window: the length of the training and
    evaluation windows (<= model.block_size; None: block_size).
    """

    model: GPTConfig = GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=64, causal=False)
    from_gpt: GPTRunConfig | None = GPTRunConfig()
    mask_rate: float = 0.15
    batch_size: int = 16
    steps: int = 150
    lr: float = 1e-2
    warmup: int = 10
    weight_decay: float = 0.01
    window: int | None = 64
    eval_every: int = 50
    eval_windows: int = 64
    seed: int = 0


GPT_RUN = GPTRunConfig()
MASKED_LM_RUN = MaskedLMRunConfig()


def mask_id(corpus: CharCorpus) -> int:
    """The id of [MASK]: one past the corpus's vocabulary."""
    return corpus.vocab_size


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup` steps, then half a cosine down to 0 at `steps` (Loshchilov & Hutter 2017).

    The schedule steps itself after every optimizer.step() (a post-hook), so
    ``train_loop(..., optimizer=optimizer)`` needs no change.
    """
    warmup, steps = int(warmup), int(steps)
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup must be in [0, steps = {steps}), got {warmup}")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    optimizer.register_step_post_hook(lambda *_: schedule.step())
    return schedule


def _fixed_windows(corpus: CharCorpus, split: str, n: int, block: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return corpus.get_batch(split, n, block, torch.Generator().manual_seed(seed))


def _run(name: str, config, objective: str, progress: bool) -> CachedRun:
    corpus = pydoc_corpus()
    extra = 1 if objective == "masked" else 0
    model_config = config.model.replace(vocab_size=corpus.vocab_size + extra)
    if (objective == "masked") == model_config.causal:
        raise ValueError(f"a {objective} objective needs causal={objective != 'masked'}, got {model_config.causal}")
    dev = device()
    block = getattr(config, "window", None) or model_config.block_size
    if block > model_config.block_size:
        raise ValueError(f"window = {block} is longer than the model's context, block_size = {model_config.block_size}")
    source = getattr(config, "from_gpt", None)
    if source is not None:
        source = dataclasses.replace(source, seed=config.seed)
        want = source.model.replace(causal=False, vocab_size=model_config.vocab_size)
        if model_config != want:
            raise ValueError(f"a masked LM that starts from the GPT needs the GPT's sizes: model must be {want} "
                             f"(or from_gpt=None to train from scratch), got {model_config}")
    key = {**config_dict(dataclasses.replace(config, model=model_config, from_gpt=source)
                         if source is not None else dataclasses.replace(config, model=model_config)),
           "corpus": corpus_sha256(corpus)}

    def build():
        torch.manual_seed(config.seed)
        return GPT(model_config).to(dev)

    def start_from_gpt(model):
        # only when training (a cached masked LM loads its own weights): the GPT's weights, [MASK]'s row new
        trained = gpt(source, progress=progress).model.state_dict()
        state = model.state_dict()
        for name, value in trained.items():
            if name in ("wte.weight", "head.weight"):  # (V, E) -> rows 0 .. V-1 of (V + 1, E)
                state[name][: value.shape[0]] = value
            else:
                state[name] = value
        model.load_state_dict(state)

    def loss_on(model, x, generator=None):
        if objective == "next":
            return next_token_loss(model(x), x)
        inputs, targets = mask_tokens(x, mask_id(corpus), config.mask_rate, generator)
        return masked_lm_loss(model(inputs), targets)

    def fit(model):
        if source is not None:
            start_from_gpt(model)
        g = torch.Generator().manual_seed(config.seed)
        # fixed windows (and, for the masked LM, fixed masks), so that evaluations are comparable
        val = _fixed_windows(corpus, "val", config.eval_windows, block, 1_000)[0].to(dev)  # (N, block)
        train = _fixed_windows(corpus, "train", config.eval_windows, block, 2_000)[0].to(dev)  # (N, block)

        def batch(_step):
            return corpus.get_batch("train", config.batch_size, block, g)[0].to(dev)  # (B, block)

        def eval_fn(m):
            return {split: loss_on(m, x, torch.Generator().manual_seed(3_000))
                    for split, x in (("train", train), ("val", val))}

        def loss_fn(m, x):
            return loss_on(m, x, g)

        if objective == "next":
            return train_loop(model, batch, loss_fn, config.steps, lr=config.lr, eval_fn=eval_fn,
                              eval_every=config.eval_every, progress=progress, desc=name, schedule="cosine",
                              adaptive_threads=True)
        # fine-tuning a trained network: a short warm-up keeps the first, large updates from undoing it
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        warmup_cosine(optimizer, config.warmup, config.steps)
        return train_loop(model, batch, loss_fn, config.steps, optimizer=optimizer, eval_fn=eval_fn,
                          eval_every=config.eval_every, progress=progress, desc=name, adaptive_threads=True)

    return cached_training(name, key, build, fit, dev.type)


# solutions/07's last section trains this smaller GPT (same run, cheaper) with the learner's functions.
SOLUTION_GPT = dict(model=GPTConfig(block_size=64, n_layer=2, n_head=4, n_embd=64), steps=300, batch_size=16)


@register("gpt", "07_gpt", GPT_RUN, variants=(SOLUTION_GPT,))
def gpt(config: GPTRunConfig = GPT_RUN, progress: bool = True) -> CachedRun:
    """Character-level GPT on pydoc_data.topics; evals: train and val next-character loss (nats)."""
    return _run("gpt", config, "next", progress)


@register("masked_lm", "07_gpt", MASKED_LM_RUN)
def masked_lm(config: MaskedLMRunConfig = MASKED_LM_RUN, progress: bool = True) -> CachedRun:
    """BERT-style masked character model on pydoc_data.topics, fine-tuned from the GPT's weights;
    evals: train and val loss at masked positions."""
    return _run("masked_lm", config, "masked", progress)
