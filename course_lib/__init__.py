"""course_lib: the tested helper package of the open course on attention.

One module per idea, in the order a learner meets them (see CONVENTIONS):
attention, masks, positional, data, train, plots, checks, cli.
"""

from .train import device, seed_everything

__version__ = "0.1.0"
__all__ = ["device", "seed_everything", "__version__"]
