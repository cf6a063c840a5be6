"""Vaswani et al. (2017), Table 1, measured: cost per layer, sequential operations, maximum path length.

Three layer types map a sequence x (n, d) to a sequence (n, d):

* ``"self-attention"``: ``course_lib.attention.MultiHeadAttention`` (one head
  is enough for the counts), every position attends to every position.
* ``"recurrent"``: h_t = tanh(x_t W_x + h_{t-1} W_h + b), one step after another
  (``course_lib.rnn.rnn_forward``).
* ``"convolutional"``: ``nn.Conv1d`` with kernel k (contiguous, "same" padding).

Measured, not quoted:

* ``layer_flops``: floating-point operations of one forward pass, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplies and
  convolutions): the paper's "complexity per layer".
* ``sequential_operations``: the longest chain of operations that depend on
  one another in the autograd graph from input to output: work that cannot
  run in parallel however many processors there are.
* ``path_length``: the fewest layer applications after which output n depends
  on input 1, read from the Jacobian dy_n/dx_1 (zero or not). For the
  recurrent layer one "application" is one step of the recurrence run at every
  position in parallel: after k steps, information has moved k positions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .._validate import check_int as _check_int
from ..attention import MultiHeadAttention
from ..rnn import rnn_forward

__all__ = ["LAYER_KINDS", "PAPER_TABLE_1", "make_layer", "layer_flops", "graph_depth", "sequential_operations",
           "path_length", "fit_exponent", "step_seconds_by_round"]

LAYER_KINDS = ("self-attention", "recurrent", "convolutional")

#: The paper's Table 1 (n: sequence length, d: representation size, k: kernel size).
PAPER_TABLE_1 = {
    "self-attention": ("O(n^2 d)", "O(1)", "O(1)"),
    "recurrent": ("O(n d^2)", "O(n)", "O(n)"),
    "convolutional": ("O(k n d^2)", "O(1)", "O(log_k n)"),  # dilated; O(n/k) for contiguous kernels
}


class _Recurrent(nn.Module):
    """Elman RNN layer (B, n, d) -> (B, n, d) through the course's rnn_forward, one step at a time."""

    def __init__(self, d: int):
        super().__init__()
        self.W_x = nn.Parameter(torch.randn(d, d) / math.sqrt(d))
        self.W_h = nn.Parameter(torch.randn(d, d) / math.sqrt(d))
        self.b = nn.Parameter(torch.zeros(d))

    def forward(self, x: Tensor) -> Tensor:
        return rnn_forward(x, x.new_zeros(x.shape[0], x.shape[2]), self.W_x, self.W_h, self.b)[0]  # (B, n, d)

    def parallel_step(self, x: Tensor, h: Tensor) -> Tensor:
        """One step of the recurrence at every position at once: h_t <- tanh(x_t W_x + h_{t-1} W_h + b)."""
        previous = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)  # (B, n, d): h_{t-1}, h_0 = 0
        return torch.tanh(x @ self.W_x + previous @ self.W_h + self.b)


class _SelfAttention(nn.Module):
    def __init__(self, d: int, num_heads: int = 1):
        super().__init__()
        self.attn = MultiHeadAttention(d, num_heads, fast=False)  # the readable path: its matmuls are counted

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(x, x, x, need_weights=False)[0]  # (B, n, d)


class _Convolution(nn.Module):
    def __init__(self, d: int, kernel: int):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd for 'same' padding, got {kernel}")
        self.conv = nn.Conv1d(d, d, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, d, n) for Conv1d, back to (B, n, d)


def make_layer(kind: str, d: int, kernel: int = 3) -> nn.Module:
    """A layer of one of LAYER_KINDS mapping (B, n, d) -> (B, n, d), seeded by the caller."""
    d = _check_int("d", d)
    if kind == "self-attention":
        return _SelfAttention(d)
    if kind == "recurrent":
        return _Recurrent(d)
    if kind == "convolutional":
        return _Convolution(d, _check_int("kernel", kernel))
    raise ValueError(f"kind must be one of {list(LAYER_KINDS)}, got {kind!r}")


def layer_flops(kind: str, n: int, d: int, kernel: int = 3) -> int:
    """FLOPs of one forward pass of one layer on one sequence (1, n, d), counted by torch."""
    layer = make_layer(kind, d, kernel)
    x = torch.randn(1, _check_int("n", n), d)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(x)
    return int(counter.get_total_flops())


def graph_depth(output: Tensor) -> int:
    """Length of the longest chain of autograd nodes from ``output`` back to the leaves."""
    if output.grad_fn is None:
        raise ValueError("output has no autograd graph: compute it from a tensor with requires_grad=True")
    depth: dict = {}
    stack = [(output.grad_fn, False)]
    while stack:  # iterative post-order: a recurrent graph is deeper than Python's recursion limit
        node, done = stack.pop()
        if node is None or (node in depth and not done):
            continue
        if done:
            children = [c for c, _ in node.next_functions if c is not None]
            depth[node] = 1 + max((depth[c] for c in children), default=0)
            continue
        depth[node] = 0  # visiting
        stack.append((node, True))
        stack.extend((c, False) for c, _ in node.next_functions if c is not None and c not in depth)
    return depth[output.grad_fn]


def sequential_operations(kind: str, n: int, d: int = 16, kernel: int = 3) -> int:
    """Depth of the autograd graph of one layer on a sequence of length n (see graph_depth)."""
    torch.manual_seed(0)
    layer = make_layer(kind, d, kernel)
    x = torch.randn(1, _check_int("n", n), d, requires_grad=True)
    return graph_depth(layer(x))


def _depends(y_last: Tensor, x: Tensor) -> bool:
    (grad,) = torch.autograd.grad(y_last.sum(), x, retain_graph=True, allow_unused=True)
    return grad is not None and bool(grad[0, 0].abs().sum() > 0)  # d y_n / d x_1 non-zero


def path_length(kind: str, n: int, d: int = 8, kernel: int = 3, max_layers: int | None = None) -> int:
    """The fewest layer applications after which output n depends on input 1 (dy_n/dx_1 != 0).

    Self-attention and convolution: a stack of that many layers. Recurrent: that
    many steps of the recurrence, each run at every position at once. Raises if
    max_layers (default n) is not enough.
    """
    n = _check_int("n", n, minimum=2)
    max_layers = n if max_layers is None else _check_int("max_layers", max_layers)
    torch.manual_seed(0)
    x = torch.randn(1, n, d, requires_grad=True)
    if kind == "recurrent":
        cell = make_layer(kind, d)
        h = torch.zeros(1, n, d)
        for k in range(1, max_layers + 1):
            h = cell.parallel_step(x, h)
            if _depends(h[:, -1], x):
                return k
    else:
        y = x
        for k in range(1, max_layers + 1):
            y = make_layer(kind, d, kernel)(y)
            if _depends(y[:, -1], x):
                return k
    raise ValueError(f"output {n} still does not depend on input 1 after {max_layers} layers of {kind!r}")


def fit_exponent(xs, ys) -> float:
    """Slope of log(ys) against log(xs) (least squares): ys ~ xs ** slope."""
    lx = torch.log(torch.tensor([float(v) for v in xs], dtype=torch.float64))
    ly = torch.log(torch.tensor([float(v) for v in ys], dtype=torch.float64))
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


def step_seconds_by_round(steps: dict, rounds: int = 10) -> dict:
    """CPU time (``time.process_time``) of single training steps, taken round robin.

    steps: {key: (model, batch, loss_fn)}; each model takes one untimed step first (it pays for
    allocations), then every round times one step (forward, backward, SGD update at lr 1e-6) of each
    model in the order of `steps`. -> {key: [seconds in round 0, round 1, ...]}.

    Why rounds: a machine's speed can change from one second to the next (by up to 1.6x on the
    course's 2-core test machine: other work on the host shares the cores and caches; CPU time does not count the waiting, but it does count the
    slower running). The steps of one round run within about a second of one another, so a ratio
    or a growth exponent computed inside one round compares like with like; the median over rounds
    then drops the rounds that a change of speed cut in two."""
    import time

    rounds = _check_int("rounds", rounds)
    if not isinstance(steps, dict) or not steps:
        raise ValueError("steps must be a non-empty dict {key: (model, batch, loss_fn)}, "
                         f"got {type(steps).__name__}")
    optimizers = {}
    for key, entry in steps.items():
        if not (isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[0], nn.Module)
                and callable(entry[2])):
            raise ValueError(f"steps[{key!r}] must be a tuple (model, batch, loss_fn), got {entry!r:.80}")
        optimizers[key] = torch.optim.SGD(entry[0].parameters(), lr=1e-6)

    def step(key):
        model, batch, loss_fn = steps[key]
        start = time.process_time()
        loss = loss_fn(model, batch)
        optimizers[key].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[key].step()
        return time.process_time() - start

    for key, (model, _, _) in steps.items():
        model.train()
        step(key)
    times: dict = {key: [] for key in steps}
    for _ in range(rounds):
        for key in steps:
            times[key].append(step(key))
    return times
