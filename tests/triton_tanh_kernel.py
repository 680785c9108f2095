"""A kernel applying the Triton scans' ``tanh`` elementwise, for ``test_triton_scans.test_lstm_tanh`` (imported
there, after its skips: this module needs triton)."""

import triton
import triton.language as tl

from snngraph.runtimes.torch.triton.lstm import _tanh


@triton.jit
def apply_tanh(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, _tanh(tl.load(x_ptr + offs, mask=offs < n)), mask=offs < n)
