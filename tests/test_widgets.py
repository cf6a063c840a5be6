"""Explorers in course_lib.widgets: their pure functions, the widgets driven
headlessly (set .value, look at what the callback computed), and the static
fallback that front ends without widgets show."""

import base64
import math

import matplotlib
import nbformat
import pytest
import torch
from matplotlib.figure import Figure

from course_lib import widgets as W
from course_lib.positional import sinusoidal_encoding

matplotlib.use("Agg")

TIRED = W.DEFAULT_SENTENCES["... because it was too tired"]
WIDE = W.DEFAULT_SENTENCES["... because it was too wide"]
CAT = W.DEFAULT_SENTENCES["The cat sat on the mat"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- pure functions: self-attention


def test_tokenize_keeps_apostrophes_and_drops_punctuation():
    assert W.tokenize("The animal didn't cross the street, because it was too tired.") == TIRED


def test_word_vectors_are_hand_built_and_deterministic():
    x = W.word_vectors(CAT)
    assert x.shape == (6, len(W.FEATURES))
    cat = dict(zip(W.FEATURES, x[1].tolist()))
    assert cat["noun"] == 1.0 and cat["animate"] == 1.0 and cat["verb"] == 0.0
    assert torch.equal(x[0], x[4])  # "The" and "the": case-insensitive
    unknown = W.word_vectors(["zebra", "zebra", "quokka"])
    assert torch.equal(unknown[0], unknown[1]) and not torch.equal(unknown[0], unknown[2])
    assert torch.equal(unknown, W.word_vectors(["zebra", "zebra", "quokka"]))


@pytest.mark.parametrize("tokens", [CAT, TIRED, WIDE, "a sentence of unknown words"])
@pytest.mark.parametrize("temperature", [0.1, 1.0, 7.0])
def test_attention_rows_sum_to_one(tokens, temperature):
    weights = W.self_attention_weights(tokens, temperature)
    L = len(W.tokenize(tokens)) if isinstance(tokens, str) else len(tokens)
    assert weights.shape == (L, L)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(L))


def test_it_finds_animal_when_tired_and_street_when_wide_by_construction():
    it = TIRED.index("it")
    tired = W.self_attention_row(TIRED, it)
    wide = W.self_attention_row(WIDE, it)
    assert TIRED[int(tired.argmax())] == "animal" and tired.max() > 0.4
    assert WIDE[int(wide.argmax())] == "street" and wide.max() > 0.4
    # the runner-up is the other noun: "it" asks for a noun in both sentences
    assert TIRED[int(tired.topk(2).indices[1])] == "street"


def test_grammar_words_ask_for_nothing_and_attend_uniformly():
    row = W.self_attention_row(CAT, 0)  # "The"
    torch.testing.assert_close(row, torch.full((6,), 1 / 6))
    Q, K, V = W.query_key_value(CAT)
    assert Q[0].abs().max() == 0 and K[0].abs().max() == 0
    torch.testing.assert_close(V, W.word_vectors(CAT))  # no pronoun: the context layer changes nothing here


def test_lower_temperature_sharpens_and_higher_flattens():
    it = TIRED.index("it")
    maxima = [float(W.self_attention_row(TIRED, it, t).max()) for t in (0.1, 0.3, 1.0, 3.0, 10.0)]
    assert maxima == sorted(maxima, reverse=True) and maxima[0] > 0.99
    assert maxima[-1] < 1 / len(TIRED) + 0.05  # nearly uniform
    with pytest.raises(ValueError, match="temperature"):
        W.self_attention_weights(TIRED, 0.0)


def test_temperature_one_is_scaled_dot_product_attention():
    Q, K, V = W.query_key_value(TIRED)
    expected = torch.softmax(Q @ K.T / math.sqrt(Q.shape[-1]), dim=-1)
    torch.testing.assert_close(W.self_attention_weights(TIRED, 1.0), expected)


def test_row_selects_the_query_and_checks_the_index():
    weights = W.self_attention_weights(CAT)
    torch.testing.assert_close(W.self_attention_row(CAT, 2), weights[2])
    torch.testing.assert_close(W.self_attention_row(CAT, -1), weights[5])
    with pytest.raises(IndexError):
        W.self_attention_row(CAT, 6)
    with pytest.raises(TypeError):
        W.self_attention_row(CAT, 1.0)


def test_self_attention_figure_has_labelled_heatmap_and_bars():
    fig = W.self_attention_figure(TIRED, TIRED.index("it"))
    assert isinstance(fig, Figure)
    heat, bars = fig.axes[0], fig.axes[1]
    assert [t.get_text() for t in heat.get_xticklabels()] == TIRED
    assert heat.get_xlabel() and heat.get_ylabel() and bars.get_ylabel() == "attention weight"
    assert "'it'" in bars.get_title() and "'animal'" in bars.get_title()
    # the colour scale spans the map's weights (a fixed 0..1 scale left a flat map nearly black)
    image = heat.get_images()[0]
    weights = W.self_attention_weights(TIRED, 10.0)
    flat = W.self_attention_figure(TIRED, 0, temperature=10.0).axes[0].get_images()[0]
    assert flat.get_clim() == pytest.approx((0.0, float(weights.max())))
    assert image.get_clim()[1] <= 1.0


def test_self_attention_explorer_labels_are_not_cut():
    ex = W.self_attention_explorer()
    for control in ex.controls.values():
        if W.core._ipywidgets is not None:
            assert control.style.description_width == "initial"


# --------------------------------------------------------------------------- the self-attention explorer


def test_self_attention_explorer_follows_its_controls():
    ex = W.self_attention_explorer()
    assert ex.values["sentence"] == "... because it was too tired"
    assert ex.last_result["tokens"][ex.values["query_index"]] == "it" and ex.last_result["top"] == "animal"
    before = float(ex.last_result["row"].max())

    ex.controls["temperature"].value = 0.2
    assert float(ex.last_result["row"].max()) > before
    ex.controls["temperature"].value = 5.0
    assert float(ex.last_result["row"].max()) < before
    torch.testing.assert_close(ex.last_result["row"].sum(), torch.tensor(1.0))

    updates = ex.updates
    ex.controls["sentence"].value = "... because it was too wide"
    assert ex.updates == updates + 1  # the dependent query control changed inside one update
    assert ex.last_result["tokens"][ex.values["query_index"]] == "it" and ex.last_result["top"] == "street"

    ex.controls["sentence"].value = "The cat sat on the mat"  # no "it": the query falls back to "cat"
    assert ex.last_result["tokens"][ex.values["query_index"]] == "cat"
    ex.controls["query_index"].value = 2  # "sat"
    torch.testing.assert_close(ex.last_result["row"], W.self_attention_row(CAT, 2, 5.0))
    assert ex.last_error is None and ex.renders == 0  # nothing drawn until displayed


def test_self_attention_explorer_accepts_own_sentences():
    ex = W.self_attention_explorer({"mine": "the dog chased the cat", "other": ["it", "was", "long"]},
                                   sentence="mine", query="dog", temperature=0.5)
    assert ex.last_result["tokens"][ex.last_result["query_index"]] == "dog"
    assert ex.last_result["top"] == "chased"
    with pytest.raises(KeyError):
        W.self_attention_explorer(sentence="not there")


def test_mimebundle_offers_widget_png_and_text_of_the_same_state():
    ex = W.self_attention_explorer()
    bundle = ex._repr_mimebundle_()
    assert set(bundle) == {W.WIDGET_MIME, "image/png", "text/plain"}
    assert bundle[W.WIDGET_MIME]["model_id"] == ex.widget.model_id
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    assert "temperature=1.0" in bundle["text/plain"]
    # once displayed, the live widget's output area follows the controls
    renders = ex.renders
    ex.controls["temperature"].value = 0.5
    assert ex.renders == renders + 1
    (shown,) = ex.output.outputs
    assert base64.b64decode(shown["data"]["image/png"]) == ex.last_png
    assert set(ex._repr_mimebundle_(include=["image/png"])) == {"image/png"}
    assert ex.renders == renders + 1  # the picture of an unchanged state is reused
    assert W.WIDGET_MIME not in ex._repr_mimebundle_(exclude=[W.WIDGET_MIME])


def test_an_error_in_a_callback_is_shown_not_raised():
    ex = W.self_attention_explorer()
    ex._repr_mimebundle_()
    ex.controls["query_index"].options = [("99: nowhere", 99)]  # an index past the sentence
    assert isinstance(ex.last_error, IndexError)
    assert "could not update" in ex.output.outputs[0]["data"]["text/plain"]


def test_without_ipywidgets_explorers_fall_back_to_static_pictures(monkeypatch):
    monkeypatch.setattr(W.core, "_ipywidgets", None)
    ex = W.self_attention_explorer()
    assert ex.widget is None and ex.output is None
    ex.controls["sentence"].value = "... because it was too wide"
    assert ex.last_result["top"] == "street"
    bundle = ex._repr_mimebundle_()
    assert set(bundle) == {"image/png", "text/plain"}
    pos = W.positional_explorer()
    pos.controls["d_model"].value = 8
    assert pos.last_result["pe"].shape == (64, 8) and pos.values["dims"] == (0, 1)


# --------------------------------------------------------------------------- positional encodings


def test_position_similarity_is_pe_pe_transposed_with_diagonal_d_over_2():
    sim = W.position_similarity(20, 16)
    pe = sinusoidal_encoding(20, 16)
    torch.testing.assert_close(sim, pe @ pe.T)
    torch.testing.assert_close(sim.diagonal(), torch.full((20,), 8.0))
    assert (sim.argmax(dim=1) == torch.arange(20)).all()  # each position is most similar to itself
    # depends on the offset only: the diagonals of the matrix are constant
    torch.testing.assert_close(sim.diagonal(3), torch.full((17,), float(sim[0, 3])))


def test_positional_figures():
    fig = W.sinusoidal_dims_figure(32, 16, dims=[0, 1, 6])
    lines = fig.axes[1].get_lines()
    assert len(lines) == 3 and fig.axes[0].get_xlabel() and fig.axes[1].get_ylabel()
    pe = sinusoidal_encoding(32, 16)
    torch.testing.assert_close(torch.tensor(lines[2].get_ydata()), pe[:, 6], check_dtype=False)
    assert isinstance(W.position_similarity_figure(32, 16, position=5), Figure)
    assert len(W.positional_figure().axes) >= 4
    with pytest.raises(ValueError):
        W.sinusoidal_dims_figure(32, 16, dims=[16])


def test_positional_explorer_follows_its_controls():
    ex = W.positional_explorer()  # notebook 05 calls it with no arguments
    assert ex.last_result["pe"].shape == (64, 32)
    torch.testing.assert_close(ex.last_result["row"], W.position_similarity(64, 32)[32])

    ex.controls["position"].value = 10
    assert int(ex.last_result["row"].argmax()) == 10
    ex.controls["d_model"].value = 64
    assert ex.last_result["pe"].shape == (64, 64) and float(ex.last_result["row"].max()) == pytest.approx(32.0)
    assert ex.values["dims"] == (0, 1, 8, 16)  # kept: still valid dimensions
    ex.controls["d_model"].value = 8
    assert ex.values["dims"] == (0, 1) and list(ex.controls["dims"].options) == list(range(8))
    ex.controls["max_len"].value = 8
    assert ex.values["position"] == 7 and ex.last_result["similarity"].shape == (8, 8)
    ex.controls["base"].value = 100.0
    torch.testing.assert_close(ex.last_result["pe"], sinusoidal_encoding(8, 8, 100.0))
    ex.controls["dims"].value = (2, 3)
    assert ex.last_result["dims"] == (2, 3)
    assert ex.last_error is None
    bundle = ex._repr_mimebundle_()
    assert W.WIDGET_MIME in bundle and base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)


# --------------------------------------------------------------------------- encoder-decoder alignments


def alignment_examples():
    long = torch.softmax(torch.randn(4, 6, generator=torch.Generator().manual_seed(0)), -1)
    long[2] = torch.tensor([0.0, 0.0, 0.0, 0.9, 0.1, 0.0])
    return [
        {"name": "12 mai", "weights": long, "src_tokens": list("12 mai"), "out_tokens": list("05-1")},
        {"name": "short", "weights": torch.eye(2), "src_tokens": ["a", "b"], "out_tokens": ["x", "<eos>"]},
    ]


def test_alignment_figure_labels_both_axes_and_frames_the_step():
    ex = alignment_examples()[0]
    fig = W.alignment_figure(ex["weights"], ex["src_tokens"], ex["out_tokens"], step=2)
    ax_map, ax_bar = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"][:2]
    assert [t.get_text() for t in ax_map.get_yticklabels()] == list("05-1")
    assert [t.get_text() for t in ax_map.get_xticklabels()] == ["1", "2", "' '", "m", "a", "i"]  # space shown
    assert ax_map.get_xlabel() == "source (encoder states)" and ax_map.get_ylabel() == "output (decoder steps)"
    assert "step 2 writes '-': reads 'm' most (0.90)" in ax_bar.get_title()
    assert isinstance(W.alignment_figure(ex["weights"], ex["src_tokens"], ex["out_tokens"]), Figure)
    with pytest.raises(IndexError, match=r"step must be an int in 0\.\.3"):
        W.alignment_figure(ex["weights"], ex["src_tokens"], ex["out_tokens"], step=4)
    with pytest.raises(ValueError, match=r"expected \(4, 5\)"):
        W.alignment_figure(ex["weights"], ex["src_tokens"][:5], ex["out_tokens"])
    with pytest.raises(ValueError, match="one \\(T, S\\) alignment"):
        W.alignment_figure(torch.zeros(2, 4, 6), ex["src_tokens"], ex["out_tokens"])


def test_alignment_explorer_steps_through_the_decoder():
    ex = W.alignment_explorer(alignment_examples())
    assert ex.last_result["step"] == 0 and ex.controls["step"].max == 3
    ex.controls["step"].value = 2
    assert ex.last_result["top"] == "m" and ex.last_result["row"][3] == pytest.approx(0.9)
    ex.controls["example"].value = 1  # a shorter example clips the slider
    assert ex.controls["step"].max == 1 and ex.last_result["step"] == 1 and ex.last_result["top"] == "b"
    assert ex.last_error is None
    bundle = ex._repr_mimebundle_()
    assert W.WIDGET_MIME in bundle and base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="lacks \\['out_tokens'\\]"):
        W.alignment_explorer([{"name": "x", "weights": torch.eye(2), "src_tokens": ["a", "b"]}])
    with pytest.raises(ValueError, match="non-empty list"):
        W.alignment_explorer([])


# --------------------------------------------------------------------------- the fallback, end to end


@pytest.mark.slow
def test_executed_notebook_keeps_a_png_and_html_export_shows_it(tmp_path):
    """Run a notebook headless with nbclient (as make test does): the output
    must hold the PNG next to the widget view; nbconvert's HTML, which has no
    live widget, must show the PNG."""
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from course_lib.widgets import self_attention_explorer\n"
                                          "self_attention_explorer()")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    (output,) = [o for o in nb.cells[0].outputs if o.output_type in ("execute_result", "display_data")]
    assert {"image/png", W.WIDGET_MIME, "text/plain"} <= set(output.data)
    assert base64.b64decode(output.data["image/png"]).startswith(PNG_MAGIC)

    nbconvert = pytest.importorskip("nbconvert")
    nb.metadata.pop("widgets", None)  # as a viewer without the saved widget state sees it
    html, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert "data:image/png;base64," + output.data["image/png"][:40] in html
