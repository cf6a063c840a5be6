"""course_lib.rnn's encoder-decoder: the two variants, decoding, alignment, the experiments' cache."""

import threading

import pytest
import torch

from course_lib import rnn
from course_lib.data import SequenceTask
from course_lib import experiments
from course_lib.experiments.rnn import REVERSAL, reversal_attention, reversal_rnn
from course_lib.rnn import (Seq2Seq, accuracy_by_length, bucket_accuracy, hidden_gradient_norms, reversal_alignment,
                            seq2seq_loss, train_seq2seq, translate)
from course_lib.train import cache_key, cached_training, History


@pytest.fixture
def task():
    return SequenceTask("reverse", num_symbols=6, min_len=3, max_len=7)


def make(task, attention, hidden=16, seed=0):
    torch.manual_seed(seed)
    V = len(task.vocab)
    return Seq2Seq(V, V, emb_dim=8, hidden_dim=hidden, attention=attention, attn_dim=12).eval()


def stepwise_logits(model, batch):
    """Teacher forcing one step at a time through model.step (the decoding path)."""
    state = model.start(batch.src, batch.src_lengths)
    logits, weights = [], []
    for i in range(batch.tgt_in.shape[1]):
        step_logits, state, w = model.step(batch.tgt_in[:, i], state)
        logits.append(step_logits)
        weights.append(w)
    return torch.stack(logits, 1), weights


@pytest.mark.parametrize("attention", [False, True])
def test_forward_equals_stepping_the_decoder(task, attention):
    model = make(task, attention)
    batch = task.batch(5, torch.Generator().manual_seed(1))
    logits, weights = model(batch.src, batch.src_lengths, batch.tgt_in)
    stepped, step_weights = stepwise_logits(model, batch)
    assert logits.shape == (5, batch.tgt_in.shape[1], len(task.vocab))
    torch.testing.assert_close(logits, stepped, atol=1e-5, rtol=1e-5)
    if attention:
        torch.testing.assert_close(weights, torch.stack(step_weights, 1))
    else:
        assert weights is None and all(w is None for w in step_weights)


def test_the_variants_differ_only_by_the_attention_scorer(task):
    plain, attn = make(task, False), make(task, True)
    plain_names = {n for n, _ in plain.named_parameters()}
    attn_names = {n for n, _ in attn.named_parameters()}
    assert plain_names < attn_names
    assert {n.split(".")[0] for n in attn_names - plain_names} == {"attention"}
    for name, p in plain.named_parameters():
        assert dict(attn.named_parameters())[name].shape == p.shape


def test_attention_weights_are_a_distribution_over_the_real_source(task):
    model = make(task, True)
    batch = task.batch(6, torch.Generator().manual_seed(2))
    _, weights = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, S)
    pad = torch.arange(batch.src.shape[1]) >= batch.src_lengths.unsqueeze(1)  # (B, S)
    assert torch.all(weights.masked_select(pad.unsqueeze(1).expand_as(weights)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))


@pytest.mark.parametrize("attention", [False, True])
def test_padding_does_not_change_a_row(task, attention):
    """A row's outputs do not depend on how much padding its batch adds (packed encoder, masks)."""
    model = make(task, attention)
    vocab = task.vocab
    short = vocab.encode("0123")
    src = torch.tensor([short + [vocab.pad_id] * 3, vocab.encode("5432101")])
    lengths = torch.tensor([4, 7])
    tgt_in = torch.tensor([[vocab.sos_id] + vocab.encode("3210")])
    alone, _ = model(torch.tensor([short]), torch.tensor([4]), tgt_in)
    padded, _ = model(src, lengths, torch.cat([tgt_in, tgt_in]))
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)


def test_translate_decodes_greedily_and_records_attention(task):
    model = make(task, True)
    batch = task.batch(4, torch.Generator().manual_seed(3))
    tokens, weights = translate(model, batch.src, batch.src_lengths, max_len=9)
    assert tokens.shape == (4, 9) and weights.shape == (4, 9, batch.src.shape[1])
    # the same tokens by feeding the argmax back by hand
    state = model.start(batch.src, batch.src_lengths)
    prev = torch.full((4,), model.sos_id)
    for i in range(9):
        logits, state, w = model.step(prev, state)
        prev = logits.argmax(-1)
        alive = ~(tokens[:, :i] == model.eos_id).any(1)
        assert torch.equal(prev[alive], tokens[alive, i])
        torch.testing.assert_close(weights[alive, i], w[alive])
        assert torch.all(weights[~alive, i] == 0)  # nothing recorded after a row's EOS
    plain_tokens, plain_weights = translate(make(task, False), batch.src, batch.src_lengths, max_len=9)
    assert plain_weights is None and plain_tokens.shape == (4, 9)


def test_bad_inputs_get_clear_messages(task):
    model = make(task, True)
    src = torch.tensor([[3, 4, 5]])
    with pytest.raises(ValueError, match="src must be a LongTensor"):
        model(src.float(), torch.tensor([3]), src)
    with pytest.raises(ValueError, match=r"src_lengths must lie in 1\.\.3"):
        model(src, torch.tensor([4]), src)
    with pytest.raises(ValueError, match="outside 0..8"):
        model(torch.tensor([[3, 40, 5]]), torch.tensor([3]), src)
    with pytest.raises(ValueError, match=r"tgt_in must be a LongTensor \(1, T\)"):
        model(src, torch.tensor([3]), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="hidden_dim must be an int >= 1"):
        Seq2Seq(5, 5, hidden_dim=0)
    with pytest.raises(TypeError, match="attention must be True or False"):
        Seq2Seq(5, 5, attention="yes")


def test_a_small_attention_model_learns_reversal_and_aligns_anti_diagonally(task):
    torch.set_num_threads(1)
    model = make(task, True, hidden=32)
    generator = torch.Generator().manual_seed(0)
    history = train_seq2seq(model, lambda _: task.batch(32, generator), steps=250, lr=1e-2, progress=False)
    assert history.final_loss < 0.2, history.final_loss
    by_length = accuracy_by_length(model, task, range(3, 8), per_length=50)
    assert min(by_length.values()) > 0.6, by_length
    batch = task.batch(64, torch.Generator().manual_seed(9))
    _, weights = translate(model, batch.src, batch.src_lengths, max_len=batch.tgt_out.shape[1])
    assert reversal_alignment(weights, batch.src_lengths) > 0.9


def test_reversal_alignment_counts_the_mirrored_argmax_of_real_steps():
    lengths = torch.tensor([3, 2])
    weights = torch.zeros(2, 4, 3)
    weights[0, torch.arange(3), torch.tensor([2, 1, 0])] = 1.0  # perfect
    weights[0, 3, 0] = 1.0  # the EOS step is not counted
    weights[1, 0, 1] = weights[1, 1, 1] = 1.0  # one of two right
    assert reversal_alignment(weights, lengths) == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match=r"\(B, T, S\)"):
        reversal_alignment(torch.zeros(3, 3), lengths)


def test_bucket_accuracy_averages_consecutive_lengths():
    by_length = {4: 1.0, 5: 0.5, 6: 0.0, 7: 0.25, 9: 1.0}
    assert bucket_accuracy(by_length, width=2) == {"4-5": 0.75, "6-7": 0.125, "9-9": 1.0}
    with pytest.raises(ValueError, match="empty"):
        bucket_accuracy({})


def test_hidden_gradient_norms_match_autograd():
    torch.manual_seed(0)
    B, T, D, H = 2, 7, 3, 5
    x, h0 = torch.randn(B, T, D), torch.randn(B, H)
    W_xh, W_hh, b_h = torch.randn(D, H) * 0.5, torch.randn(H, H) * 0.4, torch.randn(H) * 0.1
    norms = hidden_gradient_norms(x, h0, W_xh, W_hh, b_h)
    assert norms.shape == (T,)
    for t in range(1, T + 1):  # h_t is output index t - 1
        per_row = []
        for b in range(B):
            def last_from(h_t, b=b, t=t):
                h = h_t
                for k in range(t, T):
                    h = torch.tanh(x[b, k] @ W_xh + h @ W_hh + b_h)
                return h
            outputs, _ = rnn.rnn_forward(x[b:b + 1], h0[b:b + 1], W_xh, W_hh, b_h)
            jac = torch.autograd.functional.jacobian(last_from, outputs[0, t - 1])
            per_row.append(jac.norm())
        torch.testing.assert_close(norms[t - 1], torch.stack(per_row).mean(), atol=1e-5, rtol=1e-4)
    assert norms[-1] == pytest.approx(H ** 0.5)  # d h_T / d h_T = I


# --------------------------------------------------------------------------- the cache


def tiny_fit(calls):
    def fit(model):
        calls.append(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        return History(steps=[0, 1], loss=[2.0, 1.0], seconds=0.5)
    return fit


def tiny_build():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def test_cached_training_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls = []
    first = cached_training("toy", {"a": 1}, tiny_build, tiny_fit(calls))
    second = cached_training("toy", {"a": 1}, tiny_build, tiny_fit(calls))
    assert calls == [1] and not first.from_cache and second.from_cache
    assert first.path == second.path and first.path.exists()
    torch.testing.assert_close(first.model.weight, second.model.weight)
    assert second.history.loss == [2.0, 1.0] and second.history.seconds == 0.5
    assert "loaded from" in second.describe() and "trained now" in first.describe()
    other = cached_training("toy", {"a": 2}, tiny_build, tiny_fit(calls))
    assert calls == [1, 1] and other.path != first.path
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_retrains_over_a_broken_file_and_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    (tmp_path / cache_key("toy", {"a": 1})).write_bytes(b"not a model")
    calls = []
    with pytest.warns(UserWarning, match="training it again"):
        run = cached_training("toy", {"a": 1}, tiny_build, tiny_fit(calls))
    assert calls == [1] and not run.from_cache
    assert cached_training("toy", {"a": 1}, tiny_build, tiny_fit(calls)).from_cache
    monkeypatch.setenv("COURSE_CACHE_DIR", "off")
    off = cached_training("toy", {"a": 1}, tiny_build, tiny_fit(calls))
    assert calls == [1, 1] and off.path is None and not off.from_cache


def test_concurrent_requests_for_one_model_train_it_once(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls, results = [], []
    started = threading.Event()

    def slow_fit(model):
        started.set()
        threading.Event().wait(0.3)
        return tiny_fit(calls)(model)

    def request():
        results.append(cached_training("toy", {"a": 3}, tiny_build, slow_fit))

    threads = [threading.Thread(target=request) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    assert sorted(r.from_cache for r in results) == [False, True]


def test_cache_key_rejects_what_it_cannot_hash():
    with pytest.raises(TypeError, match="JSON"):
        cache_key("toy", {"f": object()})
    with pytest.raises(ValueError, match="identifier"):
        cache_key("two words", {})


def test_the_reversal_experiments_are_cached_and_check_their_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    first = reversal_attention(seed=3, steps=2, progress=False)
    again = experiments.run("reversal_attention", seed=3, steps=2, progress=False)
    assert again.from_cache and not first.from_cache and first.model.uses_attention
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    plain = reversal_rnn(seed=3, steps=2, progress=False)
    assert plain.path != first.path and not plain.model.uses_attention
    # notebook 02 asks for notebook 01's model by its config and gets it from the cache
    assert experiments.run("reversal_rnn", REVERSAL.__class__(seed=3, steps=2), progress=False).from_cache
    with pytest.raises(TypeError, match=r"no field\(s\) \['stpes'\]"):
        reversal_rnn(stpes=2)
    with pytest.raises(AttributeError):
        REVERSAL.steps = 1  # frozen


def test_both_reversal_experiments_see_the_same_batches(tmp_path, monkeypatch):
    """The promise of the shared config: with one seed the two models see identical data in the same order."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    seen = []
    original = SequenceTask.batch

    def recording(self, batch_size, generator=None):
        batch = original(self, batch_size, generator)
        seen.append(batch.src)
        return batch

    monkeypatch.setattr(SequenceTask, "batch", recording)
    reversal_rnn(seed=7, steps=3, progress=False)
    reversal_attention(seed=7, steps=3, progress=False)
    assert len(seen) == 6
    assert all(torch.equal(a, b) for a, b in zip(seen[:3], seen[3:]))
    assert not torch.equal(seen[0], seen[1])


def test_dates_run_stays_an_alias_of_the_registered_dates_experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    run, task = rnn.dates_run(seed=2, steps=2, progress=False)
    again = experiments.run("dates_attention", seed=2, steps=2, progress=False)
    assert again.from_cache and again.path == run.path and task.seed == 2
    assert run.model.src_embed.num_embeddings == len(task.src_vocab)


def test_seq2seq_loss_ignores_padding(task):
    model = make(task, False)
    batch = task.batch(4, torch.Generator().manual_seed(4))
    loss = seq2seq_loss(model, batch)
    logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
    real = batch.tgt_out != task.vocab.pad_id
    expected = torch.nn.functional.cross_entropy(logits[real], batch.tgt_out[real])
    torch.testing.assert_close(loss, expected)
