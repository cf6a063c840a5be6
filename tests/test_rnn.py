"""course_lib.rnn: the vanilla RNN against torch.nn.RNN, greedy decoding's contract."""

import pytest
import torch
from torch import nn

from course_lib.rnn import greedy_decode, rnn_forward


def test_rnn_forward_matches_torch_rnn():
    torch.manual_seed(0)
    B, T, D, H = 3, 6, 4, 5
    ref = nn.RNN(D, H, batch_first=True, nonlinearity="tanh")
    x, h0 = torch.randn(B, T, D), torch.randn(B, H)
    outputs, h_last = rnn_forward(x, h0, ref.weight_ih_l0.T, ref.weight_hh_l0.T, ref.bias_ih_l0 + ref.bias_hh_l0)
    ref_out, ref_h = ref(x, h0.unsqueeze(0))
    torch.testing.assert_close(outputs, ref_out)
    torch.testing.assert_close(h_last, ref_h.squeeze(0))


def test_rnn_forward_zero_steps_and_errors():
    x = torch.zeros(2, 0, 3)
    h0 = torch.randn(2, 4)
    out, h = rnn_forward(x, h0, torch.zeros(3, 4), torch.zeros(4, 4), torch.zeros(4))
    assert out.shape == (2, 0, 4) and torch.equal(h, h0)
    with pytest.raises(ValueError, match=r"expected W_xh \(3, 4\)"):
        rnn_forward(torch.zeros(2, 5, 3), h0, torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"x must be 3-D, got shape \(5, 3\)"):
        rnn_forward(torch.zeros(5, 3), h0, torch.zeros(3, 4), torch.zeros(4, 4), torch.zeros(4))


def scripted_step(script, vocab=5):
    """A step_fn that emits script[row][t] at step t, counting its calls."""
    calls = []

    def step(tokens, h):
        t = len(calls)
        calls.append(tokens.clone())
        logits = torch.zeros(len(script), vocab)
        for row, seq in enumerate(script):
            logits[row, seq[min(t, len(seq) - 1)]] = 1.0
        return logits, h + 1 if isinstance(h, torch.Tensor) else h

    return step, calls


def test_greedy_decode_feeds_back_pads_with_eos_and_stops_early():
    SOS, EOS = 0, 1
    step, calls = scripted_step([[3, 4, 1, 3, 3], [2, 1, 4, 4, 4]])
    out = greedy_decode(step, torch.zeros(2, 3), SOS, EOS, max_len=6)
    assert out.tolist() == [[3, 4, 1, 1, 1, 1], [2, 1, 1, 1, 1, 1]]
    assert len(calls) == 3  # both rows finished after the third step
    assert calls[0].tolist() == [SOS, SOS]
    assert calls[1].tolist() == [3, 2]  # the argmax is fed back
    assert out.dtype == torch.long


def test_greedy_decode_takes_the_batch_size_of_a_structured_state_from_its_caller():
    """A state whose first tensor is batch-first (B, S, H), like Seq2Seq.encode's output, used to be read as
    torch's (num_layers, B, H) layout: B was taken to be S. The batch size is now given, or h0 is (B, H)."""
    step, calls = scripted_step([[2, 1], [1], [3, 3, 1]])
    encoder_states = (torch.zeros(3, 5, 8), torch.zeros(3, 16))  # (B, S, 2H), (B, 2H): S = 5 is not the batch
    out = greedy_decode(step, encoder_states, 0, 1, max_len=4, batch_size=3)
    assert out.tolist() == [[2, 1, 1, 1], [1, 1, 1, 1], [3, 3, 1, 1]]
    assert calls[0].shape == (3,)
    with pytest.raises(ValueError, match="pass batch_size=B"):
        greedy_decode(step, encoder_states, 0, 1, max_len=4)
    with pytest.raises(ValueError, match=r"shape \(1, 3, 8\): pass batch_size=B"):
        greedy_decode(step, torch.zeros(1, 3, 8), 0, 1, max_len=4)  # torch's GRU layout: ambiguous by rank
    assert greedy_decode(step, torch.zeros(1, 3, 8), 0, 1, max_len=4, batch_size=3).shape == (3, 4)
    with pytest.raises(ValueError, match=r"logits of shape \(2, V\) for 2 rows"):
        greedy_decode(step, torch.zeros(2, 8), 0, 1, max_len=4)  # the scripted decoder has 3 rows
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(step, torch.zeros(3, 8), 0, 1, max_len=0)
