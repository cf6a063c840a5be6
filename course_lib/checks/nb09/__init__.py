"""Checks for notebook 09 (efficient attention), a package: 09.1 tiled_attention, 09.2 linear_attention,
09.3 sliding_window_mask.

Contracts (the exercise notebook states them; solutions/09_efficient_attention.ipynb):

* 09.1 ``tiled_attention(query, key, value, block_size=64)``: query (..., L, E), key (..., S, E),
  value (..., S, Ev) -> (..., L, Ev), equal to ``F.scaled_dot_product_attention`` within 1e-5, for
  any S (also not a multiple of block_size, also S < block_size), with an online softmax over key
  blocks that never builds the (L, S) score matrix. Reference ``course_lib.efficient.tiled_attention``.
  How the memory contract is checked: ``course_lib.efficient.largest_intermediate`` runs the
  learner's function under a TorchDispatchMode that sees the output of every torch operation;
  on L = 32 queries and S = 256 keys in blocks of 16, an answer whose largest intermediate has
  L * S / 2 elements or more (the whole score matrix has L * S; a block of scores L * 16) is
  rejected, and one that calls torch's own scaled_dot_product_attention (forbidden) too.
  Large-magnitude scores (about +-100, where exp overflows float32) tell a stable running maximum
  from no maximum, or from the block's maximum alone.
* 09.2 ``linear_attention(query, key, value, causal=False, eps=1e-6)``: phi(x) = elu(x) + 1,
  out_i = phi(q_i)^T S / (phi(q_i)^T z + eps) with S = sum_j phi(k_j) v_j^T, z = sum_j phi(k_j),
  over j <= i when causal (running sums; needs L == S). Reference
  ``course_lib.efficient.linear_attention``. eps = 0.5 in one sub-check shows where eps goes.
* 09.3 ``sliding_window_mask(L, window)``: bool (L, L), True where |i - j| <= window. Reference
  ``course_lib.masks.sliding_window_mask``.

One module per exercise (``tiled``, ``linear``, ``window``); importing the package registers the three
checkers. Each misconception is one wrong-but-plausible implementation; the catalogue in
tests/test_checks_09.py asserts that each gets its hint.
"""

from . import linear, tiled, window  # noqa: F401  (registers the checkers)
