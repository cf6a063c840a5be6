"""The trained models of notebook 10: a classifier whose relevant token is known by construction.

The known-token task: ``length`` filler tokens (ids 0 .. num_fillers - 1)
with exactly one signal token (one of ``num_classes`` ids after the fillers)
at a random position; the label is which signal token it is. Only that one
position matters, so every attribution can be scored against the truth.

    run = experiments.run("known_token")          # CachedRun: model, history, from_cache
    task = KnownTokenTask(KNOWN_TOKEN)            # the data it was trained on
    batch = task.batch(256, torch.Generator().manual_seed(1))
    run.model(batch.tokens)                       # (B, num_classes) logits

``known_token_uniform`` is the control of Wiegreffe & Pinter (2019): the same
model trained with every attention map frozen to uniform weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import merge_heads, split_heads
from ..train import CachedRun, device, train_loop
from ..transformer import EncoderBlock
from .core import cached, register

__all__ = ["KnownTokenConfig", "KNOWN_TOKEN", "KnownTokenTask", "KnownTokenBatch", "KnownTokenModel",
           "known_token", "known_token_uniform", "accuracy", "METHODS", "attributions", "permuted_attention"]


@dataclass(frozen=True)
class KnownTokenConfig:
    """Task (length, fillers, classes) and model (a CLS token, learned positions, pre-LN encoder blocks)."""

    length: int = 10
    num_fillers: int = 8
    num_classes: int = 4
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 2
    d_ff: int = 64
    uniform: bool = False  # True: every attention map frozen to uniform weights (the control)
    steps: int = 400
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0


KNOWN_TOKEN = KnownTokenConfig()


class KnownTokenBatch(NamedTuple):
    tokens: Tensor  # (B, L) long
    labels: Tensor  # (B,) long, the class of the signal token
    relevant: Tensor  # (B, L) float, 1 at the signal token, 0 elsewhere: the truth

    def to(self, dev) -> "KnownTokenBatch":
        return KnownTokenBatch(*(t.to(dev) for t in self))


class KnownTokenTask:
    """Sequences of fillers with one signal token; label = the signal's class (see the module docstring)."""

    def __init__(self, config: KnownTokenConfig = KNOWN_TOKEN):
        self.config = config
        self.vocab_size = config.num_fillers + config.num_classes + 1  # + the CLS token
        self.cls_id = self.vocab_size - 1

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> KnownTokenBatch:
        c = self.config
        tokens = torch.randint(0, c.num_fillers, (batch_size, c.length), generator=generator)  # (B, L)
        labels = torch.randint(0, c.num_classes, (batch_size,), generator=generator)  # (B,)
        where = torch.randint(0, c.length, (batch_size,), generator=generator)  # (B,)
        rows = torch.arange(batch_size)
        tokens[rows, where] = c.num_fillers + labels
        relevant = torch.zeros(batch_size, c.length)
        relevant[rows, where] = 1.0
        return KnownTokenBatch(tokens, labels, relevant)

    def describe(self, tokens: Tensor) -> list[str]:
        """Readable labels of one sequence's tokens (L,): fillers 'f3', signals 'S0'.."""
        n = self.config.num_fillers
        return [f"f{t}" if t < n else f"S{t - n}" for t in tokens.tolist()]


class KnownTokenModel(nn.Module):
    """[CLS] + tokens -> encoder blocks (course_lib.transformer.EncoderBlock, pre-LN) -> logits from CLS.

    Attribution-friendly entry points, all (B, L, E) token embeddings x (without positions) -> ...:
    ``forward_embeddings(x, need_weights, attention)`` where ``attention`` optionally replaces the
    weights of some layers (a list with one (B, H, L+1, L+1) tensor or None per layer), which is
    how notebook 10 permutes or optimises attention weights (Jain & Wallace 2019).
    """

    def __init__(self, config: KnownTokenConfig = KNOWN_TOKEN):
        super().__init__()
        self.config = c = config
        task = KnownTokenTask(c)
        self.cls_id = task.cls_id
        self.embed = nn.Embedding(task.vocab_size, c.d_model)
        self.pos = nn.Parameter(torch.randn(1, c.length + 1, c.d_model) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(c.d_model, c.num_heads, c.d_ff, norm_first=True)
                                    for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)

    def token_embeddings(self, tokens: Tensor) -> Tensor:
        """tokens (B, L) -> their embeddings (B, L, E), the inputs the attributions differentiate."""
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.shape[1] != self.config.length:
            got = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ValueError(f"tokens must be a (B, {self.config.length}) LongTensor, got {got}")
        return self.embed(tokens)

    def _block(self, block: EncoderBlock, x: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor]:
        """One pre-LN block with its own projections, the attention weights computed or given."""
        attn = block.self_attn
        h = block.norm1(x)
        v = split_heads(attn.v_proj(h), attn.num_heads)  # (B, H, L, Dh)
        if weights is None:
            q = split_heads(attn.q_proj(h), attn.num_heads)  # (B, H, L, Dh)
            k = split_heads(attn.k_proj(h), attn.num_heads)  # (B, H, L, Dh)
            weights = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)  # (B, H, L, L)
        x = x + attn.out_proj(merge_heads(weights @ v))  # (B, L, E)
        return x + block.ffn(block.norm2(x)), weights

    def forward_embeddings(self, x: Tensor, need_weights: bool = False,
                           attention: Sequence[Tensor | None] | None = None):
        """x (B, L, E) -> logits (B, C), and the per-layer weights [(B, H, L+1, L+1)] if need_weights."""
        B, L, E = x.shape
        z = torch.cat([self.embed.weight[self.cls_id].expand(B, 1, E), x], dim=1) + self.pos  # (B, L+1, E)
        n = L + 1
        maps = []
        for i, block in enumerate(self.blocks):
            given = attention[i] if attention is not None else None
            if given is None and self.config.uniform:
                given = z.new_full((B, block.self_attn.num_heads, n, n), 1.0 / n)  # (B, H, L+1, L+1)
            z, w = self._block(block, z, given)
            maps.append(w)
        logits = self.head(self.norm(z[:, 0]))  # (B, C): the CLS token only
        return (logits, maps) if need_weights else logits

    def forward(self, tokens: Tensor, need_weights: bool = False):
        return self.forward_embeddings(self.token_embeddings(tokens), need_weights=need_weights)


def accuracy(model: nn.Module, batch: KnownTokenBatch) -> float:
    with torch.no_grad():
        return (model(batch.tokens).argmax(-1) == batch.labels).float().mean().item()


def _known_token(config: KnownTokenConfig, progress: bool = True) -> CachedRun:
    """Train KnownTokenModel on the known-token task (fresh random batches every step)."""
    task = KnownTokenTask(config)
    dev = device()
    held_out = task.batch(512, torch.Generator().manual_seed(10_000 + config.seed)).to(dev)

    def build():
        torch.manual_seed(config.seed)
        return KnownTokenModel(config).to(dev)

    def fit(model):
        generator = torch.Generator().manual_seed(config.seed)
        return train_loop(model, lambda step: task.batch(config.batch_size, generator).to(dev),
                          lambda m, b: F.cross_entropy(m(b.tokens), b.labels), steps=config.steps, lr=config.lr,
                          eval_fn=lambda m: {"accuracy": accuracy(m, held_out)}, eval_every=100,
                          progress=progress, desc="uniform attention" if config.uniform else "known token",
                          schedule="cosine")

    return cached("known_token", config, build, fit)


known_token = register("known_token", "10_interpretability", KNOWN_TOKEN,
                       "a 2-layer encoder names the one signal token in a sequence of fillers",
                       variants=({"seed": 1}, {"seed": 2}))(_known_token)  # raw attention across training seeds
known_token_uniform = register("known_token_uniform", "10_interpretability", KnownTokenConfig(uniform=True),
                               "the same, every attention map frozen to uniform (Wiegreffe & Pinter 2019)"
                               )(_known_token)


# --------------------------------------------------------------------------- the analyses of notebook 10

METHODS = ("raw attention", "rollout", "gradient x input", "leave-one-out")


def attributions(model: KnownTokenModel, tokens: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """The four attributions of the label's logit to each token: {method: (B, L)}.

    raw attention: the last layer's CLS row, heads averaged; rollout (Abnar & Zuidema 2020): the CLS
    row of the rollout; gradient x input and leave-one-out (baseline: a zero embedding) as
    magnitudes |.|, since a token can matter by pushing the logit down as well as up."""
    from ..interpret import attention_rollout, gradient_x_input, leave_one_out

    model.eval()
    x = model.token_embeddings(tokens).detach()  # (B, L, E)
    with torch.no_grad():
        _, maps = model.forward_embeddings(x, need_weights=True)
    rows = torch.arange(len(labels))

    def score(e):  # (B', L, E) -> (B',): the label's logit; leave_one_out repeats each example L times
        logits = model.forward_embeddings(e)
        return logits[torch.arange(len(e)), labels.repeat_interleave(len(e) // len(labels))]

    return {
        "raw attention": maps[-1][:, :, 0, 1:].mean(dim=1),  # (B, L): CLS row without CLS itself
        "rollout": attention_rollout(maps)[:, 0, 1:],  # (B, L)
        "gradient x input": gradient_x_input(lambda e: model.forward_embeddings(e)[rows, labels], x).abs(),
        "leave-one-out": leave_one_out(score, x).abs(),
    }


def permuted_attention(model: KnownTokenModel, tokens: Tensor, layer: int = -1,
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Jain & Wallace (2019), permutation: shuffle the CLS row's weights over the tokens in one layer.

    -> (total-variation distance between the CLS row before and after, heads averaged (B,),
        total-variation distance between the predicted distributions before and after (B,))."""
    from ..interpret import total_variation

    model.eval()
    with torch.no_grad():
        x = model.token_embeddings(tokens)
        logits, maps = model.forward_embeddings(x, need_weights=True)
        w = maps[layer].clone()  # (B, H, L+1, L+1)
        n = w.shape[-1]
        order = torch.stack([torch.randperm(n, generator=generator) for _ in range(len(w))])  # (B, n)
        w[:, :, 0] = w[:, :, 0].gather(-1, order[:, None].expand(-1, w.shape[1], -1))
        new = [None] * len(maps)
        new[layer] = w
        logits_new = model.forward_embeddings(x, attention=new)
        d_att = total_variation(maps[layer][:, :, 0], w[:, :, 0]).mean(dim=1)
        d_pred = total_variation(logits.softmax(-1), logits_new.softmax(-1))
    return d_att, d_pred
