"""The trained models of notebook 07: a character-level GPT and a masked LM on Python's documentation.

Both read ``pydoc_corpus()`` (CPython's ``pydoc_data.topics``, last 10% held
out). The text differs between Python versions, so its SHA-256 is part of
each cache key. Notebook 10 reuses the GPT through the cache:

    from course_lib import experiments
    run = experiments.run("gpt")              # CachedRun: model, history, from_cache
    run.history.evals["val"]                  # [(step, validation loss in nats per character)]
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass

import torch

from ..data.corpus import CharCorpus
from ..gpt import GPT, GPTConfig, mask_tokens, masked_lm_loss, next_token_loss
from ..train import CachedRun, cached_training, device, train_loop
from .core import config_dict, register

__all__ = ["pydoc_corpus", "corpus_sha256", "GPTRunConfig", "MaskedLMRunConfig", "GPT_RUN", "MASKED_LM_RUN",
           "gpt", "masked_lm", "mask_id"]


@functools.lru_cache(maxsize=2)
def pydoc_corpus(val_fraction: float = 0.1) -> CharCorpus:
    """CharCorpus of pydoc_text(), the last `val_fraction` held out (built once per process)."""
    return CharCorpus(val_fraction=val_fraction)


def corpus_sha256(corpus: CharCorpus) -> str:
    """First 16 hex digits of the SHA-256 of the corpus text (it changes between Python versions)."""
    return hashlib.sha256(corpus.text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class GPTRunConfig:
    """The GPT of notebook 07. model.vocab_size is replaced by the corpus's own."""

    model: GPTConfig = GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=64)
    batch_size: int = 8
    steps: int = 1000
    lr: float = 1e-2
    eval_every: int = 100
    eval_windows: int = 64
    seed: int = 0


@dataclass(frozen=True)
class MaskedLMRunConfig:
    """The masked LM of notebook 07: the same stack without the causal mask; vocab + 1 for [MASK]."""

    model: GPTConfig = GPTConfig(block_size=64, n_layer=4, n_head=4, n_embd=64, causal=False)
    mask_rate: float = 0.15
    batch_size: int = 16
    steps: int = 400
    lr: float = 1e-2
    eval_every: int = 100
    eval_windows: int = 64
    seed: int = 0


GPT_RUN = GPTRunConfig()
MASKED_LM_RUN = MaskedLMRunConfig()


def mask_id(corpus: CharCorpus) -> int:
    """The id of [MASK]: one past the corpus's vocabulary."""
    return corpus.vocab_size


def _fixed_windows(corpus: CharCorpus, split: str, n: int, block: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return corpus.get_batch(split, n, block, torch.Generator().manual_seed(seed))


def _run(name: str, config, objective: str, progress: bool) -> CachedRun:
    corpus = pydoc_corpus()
    extra = 1 if objective == "masked" else 0
    model_config = config.model.replace(vocab_size=corpus.vocab_size + extra)
    if (objective == "masked") == model_config.causal:
        raise ValueError(f"a {objective} objective needs causal={objective != 'masked'}, got {model_config.causal}")
    dev = device()
    block = model_config.block_size
    key = {**config_dict(dataclasses.replace(config, model=model_config)), "corpus": corpus_sha256(corpus)}

    def build():
        torch.manual_seed(config.seed)
        return GPT(model_config).to(dev)

    def loss_on(model, x, generator=None):
        if objective == "next":
            return next_token_loss(model(x), x)
        inputs, targets = mask_tokens(x, mask_id(corpus), config.mask_rate, generator)
        return masked_lm_loss(model(inputs), targets)

    def fit(model):
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

        return train_loop(model, batch, loss_fn, config.steps, lr=config.lr, eval_fn=eval_fn,
                          eval_every=config.eval_every, progress=progress, desc=name, schedule="cosine")

    return cached_training(name, key, build, fit, dev.type)


@register("gpt", "07_gpt", GPT_RUN)
def gpt(config: GPTRunConfig = GPT_RUN, progress: bool = True) -> CachedRun:
    """Character-level GPT on pydoc_data.topics; evals: train and val next-character loss (nats)."""
    return _run("gpt", config, "next", progress)


@register("masked_lm", "07_gpt", MASKED_LM_RUN)
def masked_lm(config: MaskedLMRunConfig = MASKED_LM_RUN, progress: bool = True) -> CachedRun:
    """BERT-style masked character model on pydoc_data.topics; evals: train and val loss at masked positions."""
    return _run("masked_lm", config, "masked", progress)
