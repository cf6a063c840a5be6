"""Checks for notebook 06 (the Transformer), a package: exercises 06.1, 06.2 and 06.3.

* 06.1 ``layer_norm(x, weight, bias, eps=1e-5)``: over the last axis, biased
  variance, eps inside the square root; equals ``F.layer_norm`` (the reference).
* 06.2 ``class EncoderBlock(nn.Module)``: ``__init__(d_model, num_heads, d_ff,
  dropout=0.0, norm_first=True)``, submodules named as
  ``course_lib.transformer.EncoderBlock``'s (its state_dict is loaded into the
  learner's block), ``forward(x, key_padding_mask=None)`` with True = padding.
  Compared in eval mode, pre-LN and post-LN, with and without a mask; dropout
  must be off in eval and on in training.
* 06.3 ``decoder_self_mask(tgt_lengths, max_len)`` -> bool (B, max_len, max_len),
  True = take part: causal and key not padding. Reference
  ``course_lib.transformer.decoder_self_mask``.

One module per exercise (``layer_norm``, ``encoder_block``, ``decoder_mask``); importing the package
registers the three checkers. Each misconception is one wrong-but-plausible implementation; the
catalogue in tests/test_checks_06.py asserts that each gets its hint.
"""

from . import decoder_mask, encoder_block, layer_norm  # noqa: F401  (registers the checkers)
