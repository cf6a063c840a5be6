"""Efficient attention: beyond the O(L^2) score matrix (notebook 09).

One file per idea, in the order the notebook meets them:

* ``tiled``: tiled attention with an online softmax (exact, memory linear in L; the idea of
  FlashAttention), and the step-by-step trace of the online softmax behind the notebook's picture;
* ``window``: sliding-window (local) attention, as a mask and computed band by band;
* ``linear``: linear attention with the elu+1 feature map, parallel, quadratic and recurrent forms;
* ``measure``: peak memory (profiler, quietly), median time, per-token decoding time with a KV
  cache against linear attention's constant state.
"""

from .linear import (LinearAttentionState, elu_feature_map, linear_attention, linear_attention_quadratic,
                     linear_attention_recurrent)
from .measure import (Intermediates, decode_step_times, format_tiled_benchmark, largest_intermediate, median_time,
                      peak_allocated_bytes, quiet_stderr_fd, softmax_decode_step, tiled_benchmark)
from .tiled import OnlineSoftmaxStep, online_softmax_trace, tiled_attention
from .window import banded_attention, sliding_window_attention, sliding_window_mask

__all__ = [
    "tiled_attention", "online_softmax_trace", "OnlineSoftmaxStep",
    "sliding_window_mask", "sliding_window_attention", "banded_attention",
    "elu_feature_map", "linear_attention", "linear_attention_quadratic", "linear_attention_recurrent",
    "LinearAttentionState",
    "peak_allocated_bytes", "quiet_stderr_fd", "median_time", "softmax_decode_step", "decode_step_times",
    "tiled_benchmark", "format_tiled_benchmark", "largest_intermediate", "Intermediates",
]
