"""Interactive explorers: thin ipywidgets layers over pure functions, with a static fallback.

Every explorer here is three things:

1. a PURE function (inputs -> numbers) that tests and notebooks call directly,
   e.g. :func:`self_attention_row` or :func:`position_similarity`;
2. a pure drawing function (inputs -> a new ``matplotlib.figure.Figure``),
   e.g. :func:`self_attention_figure` or :func:`sinusoidal_dims_figure`;
3. an :class:`Explorer`: a few controls whose ``.value`` feeds (1) and (2).

How an explorer shows up
------------------------
An :class:`Explorer` is displayed through ``_repr_mimebundle_``, which offers
the front end three renderings of the *same* current state:

* ``application/vnd.jupyter.widget-view+json``: the live widget (controls and
  a picture that follows them), for front ends with a widget manager
  (JupyterLab, Notebook 7, VS Code, Colab);
* ``image/png``: a static picture of the current state;
* ``text/plain``: one line naming the explorer and its values.

A front end picks the richest type it can render: JupyterLab shows the widget;
``nbconvert`` (HTML) skips the widget type when the notebook carries no saved
state for that widget (its ``WidgetsDataTypeFilter``) and so shows the PNG, as
do viewers that know nothing about widgets (GitHub's notebook view, a
terminal, nbval).
Executing a notebook with ``nbclient`` stores all three types in the cell's
output, so a notebook run headless (``make test``, CI) still contains the
figure. (Checked in ``tests/test_widgets.py`` by executing a small notebook
with nbclient and exporting it to HTML.) One limitation: a notebook saved with
outputs and reopened in JupyterLab without its kernel shows a widget
placeholder rather than the PNG, because JupyterLab prefers the widget type;
re-run the cell. The course commits notebooks without outputs, so a learner
always runs the cell first.

Inside the live widget the picture is a PNG too, written into an
``ipywidgets.Output`` by setting its ``outputs`` trait: no kernel message
routing is involved, so the same code path works headless in tests. Pictures
are drawn only once the explorer has been displayed; before that, changing a
control only recomputes the numbers (``explorer.last_result``), which keeps
tests fast. Figures are plain ``matplotlib.figure.Figure`` objects, not
registered with pyplot: nothing is left open, nothing is shown twice by the
inline backend, and the Agg backend is enough.

If ipywidgets is not installed, the controls are plain objects with a
``.value`` and the explorer displays as the static PNG only.

The explorers
-------------
* :func:`self_attention_explorer` (notebook 03): pick a sentence and a query
  word, see that word's attention row as a heatmap and a bar chart, and a
  temperature slider that sharpens or flattens the softmax. The word vectors
  and projections are BUILT BY HAND (see :data:`WORD_FEATURES`), so that what
  "it" attends to in "... because it was too tired / wide" is true by
  construction: an illustration of the mechanism, not a trained model.
* :func:`positional_explorer` (notebook 05): sinusoidal encoding dimensions and
  the dot-product similarity between positions.
* :func:`alignment_explorer` (notebook 02): a trained encoder-decoder's
  attention, one output step at a time (which source symbols step i read).
* :func:`transformer_attention_explorer` (notebook 06): a trained Transformer's
  encoder self-, decoder self- and cross-attention per layer and head.
* :func:`sampler_explorer` (notebook 07): the GPT's next-character
  distribution at each step of sampling (prompt, temperature, top-k).
* :func:`digits_vit_explorer` (notebook 08): a test digit's patches, the ViT's
  prediction, each layer's attention from the class token.
* :func:`online_softmax_explorer` (notebook 09): the online softmax, block by
  block, rescaling its running maximum and sum.
* :func:`attributions_explorer` (notebook 10): raw attention, rollout, gradient
  x input and leave-one-out side by side for one input.
"""

from .core import WIDGET_MIME, Explorer
from .self_attention import (DEFAULT_SENTENCES, FEATURES, WORD_FEATURES, query_key_value, self_attention_explorer,
                             self_attention_figure, self_attention_row, self_attention_weights, tokenize, word_vectors)
from .positional import (position_similarity, position_similarity_figure, positional_explorer, positional_figure,
                         sinusoidal_dims_figure)
from .alignment import alignment_explorer, alignment_figure
from .transformer_attention import transformer_attention_explorer
from .sampler import sampler_explorer
from .digits_vit import digits_vit_explorer
from .online_softmax import online_softmax_explorer
from .attributions import attributions_explorer

__all__ = [
    "WIDGET_MIME",
    "Explorer",
    "FEATURES",
    "WORD_FEATURES",
    "DEFAULT_SENTENCES",
    "tokenize",
    "word_vectors",
    "query_key_value",
    "self_attention_weights",
    "self_attention_row",
    "self_attention_figure",
    "self_attention_explorer",
    "sinusoidal_dims_figure",
    "position_similarity",
    "position_similarity_figure",
    "positional_figure",
    "positional_explorer",
    "alignment_figure",
    "alignment_explorer",
    "transformer_attention_explorer",
    "sampler_explorer",
    "digits_vit_explorer",
    "online_softmax_explorer",
    "attributions_explorer",
]
