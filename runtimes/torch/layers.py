"""Synapse nodes as the torch modules they are: ``nn.Linear``, ``nn.Conv1d/2d``, ``nn.BatchNorm1d/2d``,
pooling, ``nn.ReLU``, ``nn.Dropout``, ``nn.Flatten``, ``nn.Sigmoid/Tanh/GELU``, ``nn.LayerNorm``, ``nn.GroupNorm``,
``nn.AdaptiveAvgPool1d/2d``, ``nn.ConvTranspose2d``, ``nn.Upsample``, ``nn.Dropout2d``.

The compiled net holds these modules under the node names and calls them during its forward pass,
so ``print(net)`` shows their sizes, ``net.apply(fn)`` reaches them, their forward hooks run and
``torch.nn.utils.prune`` / parametrizations on their weights train. What a hook sees: synapses run
over rows, so a hook is called once with the whole sequence flattened to ``(T*B, ...)``; a chain of
convolutions and pooling runs block by block (``lower.spatial_chains``), one call per block of rows;
a batch norm in training mode runs once per time step (``stats="step"``: its statistics are per step)
or once over all T*B rows (``stats="sequence"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snngraph.ir import synapses as S
from snngraph.ir import synapses_act as A
from snngraph.ir import synapses_norm as N
from snngraph.ir import synapses_pool as P
from snngraph.ir import synapses_spatial as U
from snngraph.ir.node import Node
from snngraph.ir.types import Param
from snngraph.runtimes.torch.lean_max_pool import lean_max_pool2d, tiles
from snngraph.runtimes.torch.linear_op import linear_op
from snngraph.runtimes.torch.scan_ops import tracing
from snngraph.runtimes.torch.spike_conv import spike_conv
from snngraph.runtimes.torch.spike_linear import spike_linear


class Linear(nn.Linear):
    """``nn.Linear`` that, fed 0/1 spikes (``unit_spikes=True``), saves them as bool for its backward
    (:func:`~snngraph.runtimes.torch.spike_linear.spike_linear`; values bit-identical to ``F.linear``).

    Under ``torch.compile`` / ``torch.export`` / ``torch.func`` it runs as the custom op
    ``snngraph::linear`` (:mod:`~snngraph.runtimes.torch.linear_op`); ``graded``, the graded factor of
    the neuron whose spikes it reads, lets that op save them as bool without reading the factor.
    """

    def forward(self, input: Tensor, unit_spikes: bool = False,  # noqa: A002 (torch's name)
                graded: Tensor | None = None) -> Tensor:
        if tracing():
            return linear_op(input, self.weight, self.bias, graded)
        if unit_spikes:
            return spike_linear(input, self.weight, self.bias)
        return F.linear(input, self.weight, self.bias)


def _spike_fed_forward(conv: nn.Conv1d | nn.Conv2d, input: Tensor,  # noqa: A002 (torch's name)
                       unit_spikes: bool = False) -> Tensor:
    """The convolution, as :func:`~snngraph.runtimes.torch.spike_conv.spike_conv` when fed 0/1 spikes (not while
    traced); otherwise ``nn.Conv1d/2d.forward`` itself (``_conv_forward``)."""
    if unit_spikes and not tracing():
        return spike_conv(input, conv)
    return conv._conv_forward(input, conv.weight, conv.bias)  # noqa: SLF001 (torch's own method)


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` that, fed 0/1 spikes (``forward(x, unit_spikes=True)``), saves them as bool for its backward
    (:func:`~snngraph.runtimes.torch.spike_conv.spike_conv`; values bit-identical to ``F.conv1d``)."""

    forward = _spike_fed_forward


class Conv2d(nn.Conv2d):
    """``nn.Conv2d``, spike-fed as :class:`Conv1d`."""

    forward = _spike_fed_forward


def _lean(pool: nn.MaxPool1d | nn.MaxPool2d) -> bool:
    """Whether a max pooling runs as :func:`~snngraph.runtimes.torch.lean_max_pool.lean_max_pool2d`: its windows
    tile the input, it returns no indices, and no compiler or ``torch.func`` transform traces it."""
    return not (tracing() or pool.return_indices) and tiles(pool.kernel_size, pool.stride, pool.padding,
                                                            pool.dilation, pool.ceil_mode)


class MaxPool1d(nn.MaxPool1d):
    """``nn.MaxPool1d`` that, when its windows tile the input, keeps one byte per output for its backward
    (:func:`~snngraph.runtimes.torch.lean_max_pool.lean_max_pool2d`; values bit-identical)."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (torch's name)
        if not _lean(self):
            return super().forward(input)
        return lean_max_pool2d(input.unsqueeze(-2), (1, self.kernel_size)).squeeze(-2)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d``, lean as :class:`MaxPool1d`."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (torch's name)
        return lean_max_pool2d(input, self.kernel_size) if _lean(self) else super().forward(input)


def _set(module: nn.Module, key: str, param: Param | None) -> None:
    """Replace ``module.<key>`` with the IR value: a parameter if learnable, else a buffer."""
    if key in module._parameters:
        del module._parameters[key]
    if key in module._buffers:
        del module._buffers[key]
    if param is None:
        module.register_parameter(key, None)
        return
    value = torch.from_numpy(param.value.copy())
    if param.learnable:
        module.register_parameter(key, nn.Parameter(value))
    else:
        module.register_buffer(key, value)


def _make(node: Node, rank: int) -> nn.Module | None:
    """The empty torch module of ``node`` (its per-step input has ``rank`` dims), or ``None``."""
    n = node
    if isinstance(n, S.Linear):
        return Linear(n.in_features, n.out_features, bias=n.bias is not None, device="meta")
    if isinstance(n, (S.Conv1d, S.Conv2d)):
        cls = Conv1d if isinstance(n, S.Conv1d) else Conv2d
        return cls(n.in_channels, n.out_channels, n.kernel_size, n.stride, n.padding, n.dilation, n.groups,
                   bias=n.bias is not None, device="meta")
    if isinstance(n, (S.MaxPool1d, S.MaxPool2d)):
        return (MaxPool1d if isinstance(n, S.MaxPool1d) else MaxPool2d)(n.kernel_size, n.stride, n.padding)
    if isinstance(n, (S.AvgPool1d, S.AvgPool2d)):
        return (nn.AvgPool1d if isinstance(n, S.AvgPool1d) else nn.AvgPool2d)(n.kernel_size, n.stride, n.padding)
    if isinstance(n, S.BatchNorm):
        cls = nn.BatchNorm2d if rank == 3 else nn.BatchNorm1d
        return cls(n.num_features, n.eps, n.momentum, affine=n.weight is not None, device="meta")
    if isinstance(n, S.ReLU):
        return nn.ReLU()
    if isinstance(n, S.Dropout):
        return nn.Dropout(n.p)
    if isinstance(n, A.Sigmoid):
        return nn.Sigmoid()
    if isinstance(n, A.Tanh):
        return nn.Tanh()
    if isinstance(n, A.GELU):
        return nn.GELU(n.approximate)
    if isinstance(n, N.LayerNorm):
        return nn.LayerNorm(n.normalized_shape, n.eps, elementwise_affine=n.weight is not None,
                            bias=n.bias is not None, device="meta")
    if isinstance(n, N.GroupNorm):
        return nn.GroupNorm(n.num_groups, n.num_channels, n.eps, affine=n.weight is not None, device="meta")
    if isinstance(n, P.AdaptiveAvgPool1d):
        return nn.AdaptiveAvgPool1d(n.output_size)
    if isinstance(n, P.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool2d(n.output_size)
    if isinstance(n, U.ConvTranspose2d):
        return nn.ConvTranspose2d(n.in_channels, n.out_channels, n.kernel_size, n.stride, n.padding, n.output_padding,
                                  n.groups, bias=n.bias is not None, dilation=n.dilation, device="meta")
    if isinstance(n, U.Upsample):
        return nn.Upsample(None if n.scale_factor else n.size, n.scale_factor, n.mode,
                           n.align_corners if n.mode == "bilinear" else None)
    if isinstance(n, U.Dropout2d):
        return nn.Dropout2d(n.p)
    if isinstance(n, S.Flatten):
        return nn.Flatten(n.start_dim + 1 if n.start_dim >= 0 else n.start_dim,
                          n.end_dim + 1 if n.end_dim >= 0 else n.end_dim)
    return None


MODULE_SYNAPSES = (S.Linear, S.Conv1d, S.Conv2d, S.MaxPool1d, S.MaxPool2d, S.AvgPool1d, S.AvgPool2d, S.Flatten,
                   S.ReLU, S.Dropout, S.BatchNorm, A.Sigmoid, A.Tanh, A.GELU, N.LayerNorm, N.GroupNorm,
                   P.AdaptiveAvgPool1d, P.AdaptiveAvgPool2d, U.ConvTranspose2d, U.Upsample, U.Dropout2d)
"""The synapse kinds that run as their torch module."""


def torch_module(node: Node, rank: int) -> nn.Module | None:
    """``node`` as its torch module holding the node's parameter values, or ``None`` when torch has
    no module for it (``add``, ``concat``, ``scale``, neurons: those keep a ``NodeParams``)."""
    module = _make(node, rank)
    if module is None:
        return None
    for key, value in node.fields().items():
        if isinstance(value, Param) or (value is None and key in ("weight", "bias")):
            _set(module, key, value)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        module.num_batches_tracked = torch.tensor(0, dtype=torch.long)
    return module
