"""The surrogate gradients inside Triton kernels, and their encoding as kernel arguments.

Each formula repeats ``surrogates.GRADIENTS``' expression in float32 (SSO draws noise and is never
fused; a ``custom`` surrogate is Python code and keeps the torch scan, see :func:`encode`).
"""

from __future__ import annotations

import math

import triton
import triton.language as tl

from snngraph.runtimes.torch.triton import SURROGATES

KINDS = SURROGATES  # the kernel's KIND is the index in this tuple


def encode(name: str, params: list[float] | tuple[float, ...]) -> tuple[int, float, float]:
    """``(kind, p1, p2)`` for the kernels; atan's ``pi/2*alpha`` is computed here in double, as torch does."""
    if name == "none":
        return 0, 0.0, 0.0
    values = [float(v) for v in params] + [0.0, 0.0]
    if name == "atan":
        return 0, values[0], math.pi / 2 * values[0]
    return KINDS.index(name), values[0], values[1]


@triton.jit
def surrogate_grad(z, g, KIND: tl.constexpr, p1, p2):
    """d spike / d z times ``g`` (float32); ``z`` is membrane minus threshold."""
    if KIND == 0:  # atan: alpha/2 / (1 + (pi/2 alpha z)^2)
        w = p2 * z
        out = p1 / 2 / (1 + w * w) * g
    elif KIND == 1:  # fast sigmoid
        d = p1 * tl.abs(z) + 1.0
        out = g / (d * d)
    elif KIND == 2:  # sigmoid, the stable form where exp overflows (as surrogates._sigmoid)
        e = tl.exp(-p1 * z)
        out = g * p1 * e / ((e + 1) * (e + 1))
        s = tl.sigmoid(p1 * z)
        out = tl.where(out != out, g * p1 * s * (1 - s), out)
    elif KIND == 3:  # triangular
        gt = g * p1
        out = tl.where(z >= 0, -gt, gt)
    elif KIND == 4:  # heaviside
        out = g * (z > 0).to(tl.float32)
    elif KIND == 5:  # straight through
        out = g
    elif KIND == 6:  # spike rate escape (beta, slope)
        out = g * p2 * tl.exp(-p1 * tl.abs(z - 1))
    elif KIND == 7:  # LSO
        h = (z > 0).to(tl.float32)
        out = g * h + (1 - h) * p1 * g
    else:  # SFS (slope, B)
        d = p1 * tl.abs(z) + 1.0
        out = g / (d * d) * (z > p2).to(tl.float32)
    return out


BLOCK = 256  # neurons per program: each program loops over T
# Every launch passes enable_fp_fusion=False: no fused multiply-adds, so each operation rounds as the
# torch scans' separate kernels do and float32 results match them (spikes included) on the GPU too.


def grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)
