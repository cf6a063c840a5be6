"""Plots of the course: attention maps, training curves, accuracy by length, scaling.

Plots never train: every function takes numbers already measured (tensors,
arrays, lists, dicts) and draws them. Each takes an optional ``ax`` and returns
the Axes it drew on (a Figure for multi-panel plots), with labelled axes and a
title, and works headless (Agg backend). The fits behind the scaling plot are
pure functions (:func:`polyfit_r2`, :func:`fit_power`) that notebooks assert on.

One file per kind of plot: ``heatmaps`` (attention maps), ``curves`` (training
curves, accuracy by length), ``scaling`` (measured costs and their fits).
"""

from .curves import plot_accuracy_by_length, plot_curves
from .heatmaps import attention_bar, attention_grid, attention_heatmap
from .scaling import PolyFit, fit_power, plot_scaling, polyfit_r2

__all__ = [
    "PolyFit",
    "attention_bar",
    "attention_grid",
    "attention_heatmap",
    "fit_power",
    "plot_accuracy_by_length",
    "plot_curves",
    "plot_scaling",
    "polyfit_r2",
]
