"""notebook 10's attributions explorer: pure functions, and the slider changes the figure."""

import torch

from course_lib.experiments.interpret import KnownTokenConfig, KnownTokenModel, KnownTokenTask
from course_lib.widgets.attributions import attribution_table, attributions_explorer, attributions_figure


def _setup():
    config = KnownTokenConfig()
    torch.manual_seed(0)
    model = KnownTokenModel(config).eval()
    task = KnownTokenTask(config)
    return model, task, task.batch(6, torch.Generator().manual_seed(0))


def test_table_rows_sum_to_one_and_figure_has_labels():
    model, task, batch = _setup()
    table = attribution_table(model, batch.tokens, batch.labels)
    assert table.shape == (6, 4, config_length()) and torch.allclose(table.sum(-1), torch.ones(6, 4), atol=1e-5)
    fig = attributions_figure(table[0], task.describe(batch.tokens[0]), int(batch.relevant[0].argmax()))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == task.describe(batch.tokens[0])


def config_length():
    return KnownTokenConfig().length


def test_moving_the_slider_changes_the_figure():
    model, task, batch = _setup()
    explorer = attributions_explorer(model, batch, task)
    explorer.update()
    first = explorer.png()
    explorer.controls["example"].value = 1
    assert explorer.last_result["relevant"] == int(batch.relevant[1].argmax())
    assert explorer.png() != first
