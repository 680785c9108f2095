"""The Triton Norse scans (``runtimes/torch/triton/norse.py``) in Triton's interpreter on CPU tensors against
the torch Norse scan: every cell and option, spikes exact, states and gradients within 1e-5 relative
(float32); float16/bfloat16 state against float32; ``sg.compile(kernels="triton")`` on a Norse net trains
like ``"torch"``, eagerly and under ``torch.compile``.

Run with ``make test-triton`` (installs triton, sets ``TRITON_INTERPRET=1``); skipped otherwise.
"""

import pytest
import torch

from snngraph.runtimes.torch.triton import available, interpreting

pytestmark = [
    pytest.mark.skipif(not available(), reason="triton is not installed (make test-triton installs it)"),
    pytest.mark.skipif(not interpreting(), reason="needs TRITON_INTERPRET=1 (make test-triton)"),
]

from triton_cases import SURROGATES  # noqa: E402 (after the skips)
from triton_cases_norse import CELLS, NORSE, check_norse, check_norse_low_precision  # noqa: E402

CPU = torch.device("cpu")


@pytest.mark.parametrize("cell,per_neuron,leak", NORSE)
def test_norse(cell, per_neuron, leak):
    check_norse(cell, per_neuron, leak, CPU)


@pytest.mark.parametrize("cell", CELLS)
def test_norse_fixed_parameters_spikes_only(cell):
    """Fixed parameters (no taus' gradients: the currents are not read back) and a loss on the spikes alone
    (LICell: on ``v`` and ``i``)."""
    check_norse(cell, True, True, CPU, learn=False, ports="all" if cell == "li" else "spk")


@pytest.mark.parametrize("cell", ["lif", "dense", "diagonal"])
@pytest.mark.parametrize("learn", [False, True], ids=["fixed", "learnt"])
def test_norse_scratch(cell, learn):
    """A private input: the currents go over it and the input gradient over them."""
    check_norse(cell, True, True, CPU, learn=learn, scratch=True, ports="spk")


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: s.name)
def test_norse_surrogates(surrogate):
    check_norse("lif", True, True, CPU, surrogate=surrogate)


@pytest.mark.parametrize("cell", ["lif", "dense", "box_subtract"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_norse_low_precision_state(cell, dtype):
    check_norse_low_precision(cell, dtype, CPU)
