import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread(request):
    """Checker catalogues run many tiny tensors, for which a second intra-op thread only adds
    waiting; on a busy machine that waiting makes a check up to 50 times slower."""
    if not request.module.__name__.startswith("test_checks_"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
