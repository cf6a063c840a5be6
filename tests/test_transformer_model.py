"""Transformer (seq2seq): shapes, causality, greedy decoding to EOS, pooled memory, config errors, training
helpers, Table 1 measurements and the attention explorer."""

import dataclasses

import numpy as np
import pytest
import torch

from course_lib.data.dates import DatesTask
from course_lib.data.seq2seq import SequenceTask
from course_lib.transformer.complexity import (LAYER_KINDS, fit_exponent, graph_depth, layer_flops, path_length,
                                               sequential_operations, step_seconds_by_round)
from course_lib.transformer.encoder import EncoderTagger
from course_lib.transformer.model import Transformer, TransformerConfig
from course_lib.transformer.training import (accuracy_by_length, exact_match_rows, seq2seq_loss, train_seq2seq,
                                             warmup_cosine)

TOL = dict(atol=1e-5, rtol=1e-5)


def small(memory="attention", seed=0, **kw):
    task = SequenceTask("reverse", 6, 3, 8)
    v = task.vocab
    torch.manual_seed(seed)
    config = TransformerConfig(len(v), len(v), d_model=16, num_heads=2, d_ff=32, max_len=16, memory=memory,
                               pad_id=v.pad_id, sos_id=v.sos_id, eos_id=v.eos_id, **kw)
    return Transformer(config).eval(), task


def test_forward_shapes_and_attention_maps():
    model, task = small()
    b = task.batch(4, torch.Generator().manual_seed(0))
    logits = model(b.src, b.src_lengths, b.tgt_in)
    assert logits.shape == (*b.tgt_in.shape, len(task.vocab))
    maps = model.attention_maps(b.src, b.src_lengths, b.tgt_in)
    S, T = b.src.shape[1], b.tgt_in.shape[1]
    assert [m.shape for m in maps["encoder"]] == [(4, 2, S, S)] * 2
    assert [m.shape for m in maps["decoder"]] == [(4, 2, T, T)] * 2
    assert [m.shape for m in maps["cross"]] == [(4, 2, T, S)] * 2
    padded = torch.arange(S)[None, :] >= b.src_lengths[:, None]  # (B, S)
    for w in maps["cross"] + maps["encoder"]:
        assert w.masked_select(padded[:, None, None, :].expand_as(w)).abs().max() == 0  # padding never read
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)), **TOL)


def test_decoder_is_causal_and_source_padding_is_ignored():
    model, task = small()
    b = task.batch(3, torch.Generator().manual_seed(1))
    logits = model(b.src, b.src_lengths, b.tgt_in)
    tgt = b.tgt_in.clone()
    tgt[:, 3:] = (tgt[:, 3:] + 1) % len(task.vocab)
    torch.testing.assert_close(model(b.src, b.src_lengths, tgt)[:, :3], logits[:, :3], **TOL)
    src = b.src.clone()
    padded = torch.arange(src.shape[1])[None, :] >= b.src_lengths[:, None]
    src[padded] = 5  # garbage where the source is padding
    torch.testing.assert_close(model(src, b.src_lengths, b.tgt_in), logits, **TOL)


def test_pooled_memory_is_one_vector():
    model, task = small("pooled")
    b = task.batch(3, torch.Generator().manual_seed(2))
    memory, padding, _ = model.encode(b.src, b.src_lengths)
    assert memory.shape == (3, 1, 16) and padding is None
    maps = model.attention_maps(b.src, b.src_lengths, b.tgt_in)
    assert maps["cross"][0].shape[-1] == 1


def test_generate_stops_at_eos_and_matches_teacher_forcing():
    model, task = small()
    b = task.batch(5, torch.Generator().manual_seed(3))
    tokens = model.generate(b.src, b.src_lengths, max_len=9)
    assert tokens.shape == (5, 9)
    for row in tokens.tolist():  # after the first EOS, only EOS
        if model.eos_id in row:
            k = row.index(model.eos_id)
            assert all(t == model.eos_id for t in row[k:])
    # greedy decoding's first steps equal the argmax of teacher forcing on its own output
    tgt_in = torch.cat([torch.full((5, 1), model.sos_id), tokens[:, :-1]], dim=1)
    assert torch.equal(model(b.src, b.src_lengths, tgt_in).argmax(-1)[:, :2], tokens[:, :2])
    with pytest.raises(ValueError, match="max_len"):
        model.generate(b.src, b.src_lengths, max_len=40)


def test_a_short_training_run_lowers_the_loss():
    model, task = small(seed=0)
    g = torch.Generator().manual_seed(0)
    history = train_seq2seq(model, lambda _: task.batch(16, g), 40, lr=5e-3, warmup=5, label_smoothing=0.1,
                            progress=False)
    assert np.mean(history.loss[-5:]) < 0.85 * np.mean(history.loss[:5])


def test_exact_match_rows_counts_the_eos():
    model, task = small()
    b = task.batch(4, torch.Generator().manual_seed(4))

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def generate(self, src, lengths, max_len):
            return torch.where(b.tgt_out == model.pad_id, model.eos_id, b.tgt_out)

    assert exact_match_rows(Oracle(), b).all()

    class NoEos(Oracle):
        def generate(self, src, lengths, max_len):
            return torch.where(b.tgt_out == model.eos_id, 3, super().generate(src, lengths, max_len))

    assert not exact_match_rows(NoEos(), b).any()


def test_accuracy_by_length_with_an_oracle():
    task = SequenceTask("reverse", 6, 3, 8)
    v = task.vocab

    class Reverser(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, src, lengths, max_len):
            out = torch.full((src.shape[0], max_len), v.eos_id)
            for i, n in enumerate(lengths.tolist()):
                out[i, :n] = src[i, :n].flip(0)
            return out

    assert accuracy_by_length(Reverser(), task, [3, 7], per_length=5) == {3: 1.0, 7: 1.0}


def test_warmup_cosine():
    f = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.01
    assert warmup_cosine(0, 100, 0) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(memory="mean"), "memory must be one of"),
    (dict(positional="rope"), "positional must be one of"),
    (dict(eos_id=99), "eos_id = 99 is not an id"),
    (dict(num_decoder_layers=0), "num_decoder_layers must be an int >= 1"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerConfig(10, 10, **kwargs)


def test_input_errors():
    model, task = small()
    b = task.batch(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="src_lengths must lie in"):
        model(b.src, torch.tensor([0, 1]), b.tgt_in)
    with pytest.raises(ValueError, match="src must be a LongTensor"):
        model(b.src.float(), b.src_lengths, b.tgt_in)
    with pytest.raises(TypeError, match="TransformerConfig"):
        Transformer({"d_model": 8})


def test_encoder_tagger_takes_any_block_class():
    from course_lib.transformer import EncoderBlock

    class Counting(EncoderBlock):
        calls = 0

        def forward(self, x, key_padding_mask=None):
            Counting.calls += 1
            return super().forward(x, key_padding_mask)

    tagger = EncoderTagger(13, 13, num_layers=3, block=Counting, norm_first=False)
    assert tagger(torch.randint(0, 13, (2, 5))).shape == (2, 5, 13) and Counting.calls == 3
    with pytest.raises(TypeError, match="block must be an nn.Module class"):
        EncoderTagger(13, 13, block=lambda *a, **k: None)


# --------------------------------------------------------------------------- Table 1


def test_flops_scale_as_table_1_says():
    ns = (128, 256, 512)
    exps = {k: fit_exponent(ns, [layer_flops(k, n, 16) for n in ns]) for k in LAYER_KINDS}
    assert exps["self-attention"] > 1.6 and abs(exps["recurrent"] - 1) < 0.05 and abs(exps["convolutional"] - 1) < 0.05
    # the attention of one query against n keys: 2 n d multiply-adds for scores and for values
    assert layer_flops("self-attention", 64, 16) > 2 * (2 * 64 * 64 * 16)


def test_sequential_operations_and_path_length():
    assert sequential_operations("self-attention", 4) == sequential_operations("self-attention", 16)
    assert sequential_operations("recurrent", 16) - sequential_operations("recurrent", 4) >= 12
    assert [path_length(k, 10) for k in LAYER_KINDS] == [1, 10, 9]
    assert path_length("convolutional", 10, kernel=5) == 5
    with pytest.raises(ValueError, match="still does not depend"):
        path_length("convolutional", 10, max_layers=3)
    with pytest.raises(ValueError, match="kind must be one of"):
        layer_flops("lstm", 8, 8)


def test_graph_depth_and_fit_exponent():
    x = torch.ones(3, requires_grad=True)
    y = x
    for _ in range(5):
        y = y * 2
    assert graph_depth(y) == 6  # five multiplications and the leaf's accumulator
    with pytest.raises(ValueError, match="no autograd graph"):
        graph_depth(torch.ones(2))
    assert fit_exponent([1, 2, 4], [3, 12, 48]) == pytest.approx(2.0)


def test_step_seconds_by_round_times_every_step_of_every_round():
    model, task = small()
    b = task.batch(4, torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in model.parameters()]
    times = step_seconds_by_round({"a": (model, b, seq2seq_loss), "b": (model, b, seq2seq_loss)}, rounds=3)
    assert list(times) == ["a", "b"] and all(len(t) == 3 and all(0 < s < 60 for s in t) for t in times.values())
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before))  # real SGD steps were taken
    with pytest.raises(ValueError, match="non-empty dict"):
        step_seconds_by_round({})
    with pytest.raises(ValueError, match=r"steps\['a'\] must be a tuple \(model, batch, loss_fn\)"):
        step_seconds_by_round({"a": (b, model, seq2seq_loss)})
    with pytest.raises(ValueError, match="rounds"):
        step_seconds_by_round({"a": (model, b, seq2seq_loss)}, rounds=0)


# --------------------------------------------------------------------------- explorer


def test_attention_explorer_follows_its_controls():
    from course_lib.widgets.transformer_attention import (attention_kind_figure, transformer_attention_explorer,
                                                          transformer_attention_maps)

    task = DatesTask(("en",), seed=0)
    torch.manual_seed(0)
    config = TransformerConfig(len(task.src_vocab), len(task.tgt_vocab), d_model=16, num_heads=2, d_ff=32)
    model = Transformer(config).eval()
    sources = [h for h, _, _ in task.pairs("test", 3)]
    maps = transformer_attention_maps(model, task.src_vocab, task.tgt_vocab, sources[0], max_len=11)
    T = len(maps["output"])
    assert maps["cross"].shape == (2, 2, T, len(sources[0]))
    assert maps["encoder"].shape == (2, 2, len(sources[0]), len(sources[0]))
    np.testing.assert_allclose(maps["decoder"].sum(-1), 1.0, atol=1e-5)
    explorer = transformer_attention_explorer(model, task.src_vocab, task.tgt_vocab, sources, max_len=11)
    first = explorer.png()
    explorer.controls["example"].value = 2
    assert explorer.last_result["source"] == list(sources[2]).copy() or "␣" in explorer.last_result["source"]
    assert explorer.png() != first
    explorer.controls["kind"].value = "encoder self-attention"
    assert explorer.last_result["weights"].shape[-1] == explorer.last_result["weights"].shape[-2]
    with pytest.raises(ValueError, match="kind must be one of"):
        attention_kind_figure(maps, "self", 0)
    with pytest.raises(IndexError, match="layer must be in"):
        attention_kind_figure(maps, "cross-attention", 5)
