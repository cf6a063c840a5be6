"""Tests for course_lib.plots: every function draws headless, labels what it draws, rejects bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.plots import (  # noqa: E402
    attention_bar,
    attention_grid,
    attention_heatmap,
    fit_power,
    plot_accuracy_by_length,
    plot_curves,
    plot_scaling,
    polyfit_r2,
)

TOKENS = ["The", "cat", "sat", "on", "the", "mat"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _tick_texts(axis):
    return [t.get_text() for t in axis.get_ticklabels()]


def _weights(L=6, S=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(L, S, generator=g), dim=-1)


# --- attention maps -------------------------------------------------------------


def test_attention_heatmap_labels_titles_and_values():
    w = _weights(6, 6).requires_grad_()
    ax = attention_heatmap(w, TOKENS, TOKENS, title="one head", annotate=True)
    assert _tick_texts(ax.xaxis) == TOKENS
    assert _tick_texts(ax.yaxis) == TOKENS
    assert ax.get_title() == "one head"
    assert "key" in ax.get_xlabel() and "query" in ax.get_ylabel()
    image = ax.images[0]
    np.testing.assert_allclose(image.get_array(), w.detach().numpy(), rtol=1e-6)
    assert image.get_clim()[0] == 0.0
    assert len(ax.texts) == 36 and ax.texts[0].get_text() == f"{w[0, 0].item():.2f}"
    assert len(ax.figure.axes) == 2  # the map and its colour bar
    assert ax.get_xticklabels()[0].get_rotation() == 0  # short tokens stay horizontal


@pytest.mark.parametrize("cmap,dark_cell", [("viridis", 0), ("Blues", 1)])
def test_attention_heatmap_annotation_contrasts_with_cell(cmap, dark_cell):
    w = torch.tensor([[0.0, 1.0]])
    ax = attention_heatmap(w, annotate=True, cmap=cmap, colorbar=False)
    colours = [t.get_color() for t in ax.texts]
    assert colours[dark_cell] == "white" and colours[1 - dark_cell] == "black"


def test_attention_heatmap_rectangular_on_given_axes_without_labels():
    fig, (left, right) = plt.subplots(1, 2)
    w = np.random.default_rng(0).random((3, 7))
    ax = attention_heatmap(w, ax=right, colorbar=False)
    assert ax is right
    assert ax.images[0].get_array().shape == (3, 7)
    assert ax.get_title() == "attention weights"
    assert len(fig.axes) == 2
    assert not left.images


@pytest.mark.parametrize(
    "kwargs,words",
    [
        (dict(x_labels=TOKENS[:5]), r"x_labels has 5 labels but the weights of shape \(6, 6\) have 6 keys"),
        (dict(y_labels=TOKENS + ["!"]), r"y_labels has 7 labels but the weights of shape \(6, 6\) have 6 queries"),
    ],
)
def test_attention_heatmap_label_count_mismatch(kwargs, words):
    with pytest.raises(ValueError, match=words):
        attention_heatmap(_weights(), **kwargs)


def test_attention_heatmap_rejects_wrong_rank_and_string_labels():
    with pytest.raises(ValueError, match=r"2-D \(L, S\).*\(2, 6, 6\).*weights\[0, head\]"):
        attention_heatmap(torch.rand(2, 6, 6))
    with pytest.raises(TypeError, match="x_labels must be a sequence"):
        attention_heatmap(_weights(1, 3), x_labels="abc")


def test_attention_heatmap_png_renders(tmp_path):
    tokens = "The animal didn't cross the street because it was too tired".split()
    ax = attention_heatmap(_weights(len(tokens), len(tokens), seed=3), tokens, tokens, annotate=True)
    assert ax.get_xticklabels()[0].get_rotation() == 90  # long tokens are drawn vertically
    path = tmp_path / "heatmap.png"
    ax.figure.savefig(path, dpi=60)
    assert path.stat().st_size > 5000
    image = plt.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200


def test_attention_grid_from_tensor_and_list():
    w = torch.stack([_weights(seed=s) for s in range(5)])  # (H, L, S)
    fig = attention_grid(w, TOKENS, TOKENS, ncols=3, suptitle="five heads")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 5
    assert [ax.get_title() for ax in axes] == [f"head {k}" for k in range(5)]
    assert fig._suptitle.get_text() == "five heads"
    assert _tick_texts(axes[3].xaxis) == TOKENS and _tick_texts(axes[0].yaxis) == TOKENS
    assert len({ax.images[0].get_clim() for ax in axes}) == 1  # one shared colour scale
    assert sum(ax.get_visible() for ax in fig.axes if not ax.images and ax.get_label() != "<colorbar>") == 0

    fig = attention_grid([_weights(2, 3), _weights(2, 3, seed=1)], titles=["layer 1", "layer 2"])
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["layer 1", "layer 2"]


def test_attention_grid_errors():
    w = torch.rand(2, 3, 3)
    with pytest.raises(ValueError, match="titles must have one entry per map"):
        attention_grid(w, titles=["only one"])
    with pytest.raises(ValueError, match=r"\(H, L, S\).*weights\[0\]"):
        attention_grid(torch.rand(1, 2, 3, 3))
    with pytest.raises(ValueError, match="x_labels has 2 labels"):
        attention_grid(w, x_labels=["a", "b"])
    with pytest.raises(ValueError, match="ncols"):
        attention_grid(w, ncols=0)


def test_attention_bar_highlights_the_maximum():
    row = torch.tensor([0.1, 0.6, 0.2, 0.1])
    ax = attention_bar(row, ["a", "b", "c", "d"], title="query 'it'")
    assert _tick_texts(ax.xaxis) == ["a", "b", "c", "d"]
    assert ax.get_title() == "query 'it'" and ax.get_ylabel() == "attention weight" and ax.get_xlabel()
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, row.numpy())
    colours = [p.get_facecolor() for p in ax.patches]
    assert colours[1] != colours[0] and colours.count(colours[0]) == 3
    with pytest.raises(ValueError, match=r"labels has 3 labels but the weights of shape \(4,\) have 4 keys"):
        attention_bar(row, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"shape \(S,\)"):
        attention_bar(torch.rand(2, 4), None)


# --- curves -----------------------------------------------------------------------


def test_plot_curves_formats_and_legend():
    evals = [(0, 1.0), (50, 0.5), (99, 0.3)]
    ax = plot_curves({"train": np.linspace(2, 0.1, 100), "val": evals, "xy": ([0, 10], [1.5, 1.0])}, title="loss")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val", "xy"]
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss" and ax.get_title() == "loss"
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[1].get_xdata(), [0, 50, 99])
    np.testing.assert_allclose(lines[1].get_ydata(), [1.0, 0.5, 0.3])
    np.testing.assert_allclose(lines[2].get_xdata(), [0, 10])


def test_plot_curves_smoothing_and_log_scale():
    rng = np.random.default_rng(0)
    noisy = 1.0 + rng.normal(0, 0.5, 200)
    ax = plot_curves({"train": noisy, "val": [1.0, 0.9, 0.8]}, xlabel="step", ylabel="loss", logy=False, smooth=0.9)
    raw, smoothed, val = ax.get_lines()
    assert np.std(smoothed.get_ydata()) < 0.5 * np.std(raw.get_ydata())
    assert smoothed.get_ydata()[0] == pytest.approx(noisy[0])  # bias-corrected start
    np.testing.assert_allclose(val.get_ydata(), [1.0, 0.9, 0.8])  # short curves are not smoothed
    ax = plot_curves({"a": [1.0, 0.1, 0.01]}, logy=True)
    assert ax.get_yscale() == "log"


@pytest.mark.parametrize(
    "curves,kwargs,words",
    [
        ({}, {}, "non-empty dict"),
        ({"a": [1, 2]}, dict(smooth=1.0), "smooth must be"),
        ({"a": ([1, 2, 3], [1, 2])}, {}, "3 x values but 2 y values"),
        ({"a": np.zeros((2, 3))}, {}, r"shape \(2, 3\)"),
    ],
)
def test_plot_curves_errors(curves, kwargs, words):
    with pytest.raises(ValueError, match=words):
        plot_curves(curves, **kwargs)


def test_plot_accuracy_by_length_numeric_buckets():
    buckets = {"RNN": {20: 0.05, 5: 0.97, 10: 0.6}, "RNN + attention": {5: 1.0, 10: 0.99, 20: 0.95}}
    ax = plot_accuracy_by_length(buckets, title="reversal")
    rnn, attn = ax.get_lines()
    np.testing.assert_allclose(rnn.get_xdata(), [5, 10, 20])
    np.testing.assert_allclose(rnn.get_ydata(), [0.97, 0.6, 0.05])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["RNN", "RNN + attention"]
    low, high = ax.get_ylim()
    assert low <= 0 and 1 <= high < 1.1
    assert ax.yaxis.get_major_formatter()(0.5, 0) == "50%"
    assert ax.get_title() == "reversal" and ax.get_xlabel() and ax.get_ylabel()


def test_plot_accuracy_by_length_categorical_buckets_and_errors():
    ax = plot_accuracy_by_length({"model": [("1-5", 0.9), ("6-10", 0.5), ("11-20", 0.1)]})
    ax.figure.canvas.draw()
    assert _tick_texts(ax.xaxis) == ["1-5", "6-10", "11-20"]
    with pytest.raises(ValueError, match=r"buckets\['m'\]\[5\] = 97.0 is not an accuracy in \[0, 1\]"):
        plot_accuracy_by_length({"m": {5: 97.0}})
    with pytest.raises(ValueError, match="non-empty"):
        plot_accuracy_by_length({})


# --- scaling ------------------------------------------------------------------------


def test_fit_power_recovers_exponents():
    x = np.array([32, 64, 128, 256, 512, 1024], dtype=float)
    rng = np.random.default_rng(0)
    quadratic = 3e-6 * x**2 * (1 + rng.normal(0, 0.02, x.size))
    assert abs(fit_power(x, quadratic) - 2.0) < 0.05
    assert abs(fit_power(torch.tensor(x), torch.tensor(5 * x)) - 1.0) < 1e-9
    with pytest.raises(ValueError, match="x > 0 and y > 0"):
        fit_power([1, 2, 3], [1, 0, 2])
    with pytest.raises(ValueError, match=r"equal length, got shapes \(3,\) and \(2,\)"):
        fit_power([1, 2, 3], [1, 2])


def test_polyfit_r2_exact_and_noisy():
    x = np.arange(1, 9, dtype=float)
    coefficients, r2 = polyfit_r2(x, 2 * x**2 - 3 * x + 1, 2)
    np.testing.assert_allclose(coefficients, [2, -3, 1], atol=1e-8)
    assert r2 == pytest.approx(1.0)
    fit = polyfit_r2(x, x**2, 1)
    assert 0.8 < fit.r2 < 1.0
    with pytest.raises(ValueError, match="at least 3 points"):
        polyfit_r2([1, 2], [1, 4], 2)
    with pytest.raises(ValueError, match="degree"):
        polyfit_r2(x, x, -1)


@pytest.mark.parametrize("fit", ["quadratic", "linear", "power", None])
def test_plot_scaling_draws_points_fits_and_legend(fit):
    x = np.array([64, 128, 256, 512])
    ys = {"attention": 1e-4 * x**2, "rnn": 0.01 * x}
    ax = plot_scaling(x, ys, fit=fit, xlabel="length", ylabel="ms", logx=fit == "power", logy=fit == "power")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(":")[0] for t in legend] == ["attention", "rnn"]
    assert ax.get_xlabel() == "length" and ax.get_ylabel() == "ms" and ax.get_title()
    assert len(ax.get_lines()) == (2 if fit is None else 4)
    if fit == "quadratic":
        assert "R²=1.000" in legend[0] and "x²" in legend[0]
    if fit == "power":
        assert "2.00" in legend[0] and "1.00" in legend[1]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_plot_scaling_labels_a_log_axis_with_a_few_plain_sizes_and_no_minor_labels():
    """Matplotlib's default minor labels on a log axis ran into each other ("3×10²4×10²") in notebook 03."""
    x = [128, 181, 256, 362, 512, 724, 1024, 1448, 2048]
    ax = plot_scaling(x, {"time": [v**2 for v in x]}, fit="power", logx=True, logy=True)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels == ["128", "256", "512", "1024", "2048"]
    assert not [t.get_text() for t in ax.xaxis.get_minorticklabels() if t.get_text()]
    plt.close(ax.figure)


def test_plot_scaling_errors():
    with pytest.raises(ValueError, match="fit must be"):
        plot_scaling([1, 2, 3], {"a": [1, 2, 3]}, fit="cubic")
    with pytest.raises(ValueError, match=r"ys\['a'\]"):
        plot_scaling([1, 2, 3], {"a": [1, 2]})
