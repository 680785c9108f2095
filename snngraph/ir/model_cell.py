r"""Gated cells of declared neuron models (``cell=`` in :func:`~snngraph.ir.model.neuron_model`).

A cell model holds the weights of a gated recurrent cell (snnTorch's ``SLSTM`` and ``SConv2dLSTM``)
as node parameters, named as in snnTorch's ``state_dict``, and its step reads them through two ops:

- ``ops.project(x)``: the input projection of the raw input :math:`x` (``gates * hidden`` features);
- ``ops.recurrent(h)``: the hidden-to-gates map of a state :math:`h` (``gates * hidden`` features).

The state (and every port) has ``hidden`` features, the input any number: the node changes the
feature size. The compiled sequence runner applies ``project`` to all ``T*B`` rows at once before
the time loop (one matmul / convolution), so only ``recurrent`` runs per step.

Kinds:

``linear`` (``torch.nn.LSTMCell``'s weights): ``lstm_cell.weight_ih`` :math:`[G H, N]`,
``lstm_cell.weight_hh`` :math:`[G H, H]`, ``lstm_cell.bias_ih``/``bias_hh`` :math:`[G H]` (both or
neither); :math:`\mathrm{project}(x) = W_{ih} x + b_{ih}`, :math:`\mathrm{recurrent}(h) = W_{hh} h + b_{hh}`.

``conv2d`` (one convolution over the channel concatenation :math:`[x, h]`, padding ``k // 2``):
``conv.weight`` :math:`[G C, C_{in} + C, k_h, k_w]` (odd kernel sizes), ``conv.bias`` :math:`[G C]`;
:math:`\mathrm{project}(x) = W_{:, :C_{in}} * x + b`, :math:`\mathrm{recurrent}(h) = W_{:, C_{in}:} * h`
(their sum is the convolution of :math:`[x, h]`).

``heads`` (:mod:`snngraph.ir.model_heads`): the model's own named ``torch.nn.Linear`` projections
(``<head>.weight``/``.bias``), read by ``ops.project(x, head)``; no ``ops.recurrent``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.ir.init import as_array, kaiming_weight, uniform_fan_in

__all__ = ["CELLS", "CellKind", "cell_fields", "cell_kind"]


@dataclasses.dataclass(frozen=True)
class CellKind:
    """One kind of cell.

    Attributes:
        fields: node field -> public name (``state_dict`` key under the node).
        keywords: the builder keywords and their defaults.
        state_shape: ``(node_fields, gates, input_shape) -> state shape or error message``.
        build: ``(input_shape, gates, keywords, where) -> node fields`` (numpy arrays or ``None``).
        out_shape: ``(node_fields_and_options, input_shape) -> output shape or error message``
            (``None``: the state's).
        spikes: ``options_and_dims -> whether the output is spikes`` (``None``: it is).
        dims: ``node_fields -> the sizes handed to the step in p`` (``None``: none).
    """

    fields: dict[str, str]
    keywords: dict[str, Any]
    state_shape: Callable[[dict[str, Any], int, tuple[int, ...]], tuple[int, ...] | str]
    build: Callable[[tuple[int, ...], int, dict[str, Any], str], dict[str, Any]]
    out_shape: Callable[[dict[str, Any], tuple[int, ...]], tuple[int, ...] | str] | None = None
    spikes: Callable[[dict[str, Any]], bool] | None = None
    dims: Callable[[dict[str, Any]], dict[str, int] | str] | None = None


def _positive_int(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GraphError(f"{where}: {key} must be a positive int, got {value!r}")
    return int(value)


def _given(kw: dict[str, Any], key: str, default: Callable[[], np.ndarray], shape: tuple[int, ...],
           where: str) -> np.ndarray:
    value = kw.get(key)
    return default() if value is None else as_array(value, f"{where} {key}", shape)


# --- linear (LSTMCell) ------------------------------------------------------------------------------------
def _linear_shape(f: dict[str, Any], gates: int, shape: tuple[int, ...]) -> tuple[int, ...] | str:
    w_ih, w_hh, b_ih, b_hh = (f[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    if w_ih is None or w_hh is None or w_hh.value.ndim != 2 or w_ih.value.ndim != 2:
        return "needs 2-D lstm_cell.weight_ih and lstm_cell.weight_hh"
    hidden = w_hh.shape[1]
    if len(shape) != 1 or w_ih.shape != (gates * hidden, shape[0]) or w_hh.shape != (gates * hidden, hidden):
        return (f"needs a 1-D input, lstm_cell.weight_ih [{gates}*H, inputs] and weight_hh [{gates}*H, H]; got input "
                f"{list(shape)}, weight_ih {list(w_ih.shape)}, weight_hh {list(w_hh.shape)}")
    if (b_ih is None) != (b_hh is None):
        return "lstm_cell.bias_ih and bias_hh are both given or both omitted"
    for b in (b_ih, b_hh):
        if b is not None and b.shape != (gates * hidden,):
            return f"lstm_cell biases must have shape [{gates * hidden}]"
    return (hidden,)


def _linear_build(shape: tuple[int, ...], gates: int, kw: dict[str, Any], where: str) -> dict[str, Any]:
    """``torch.nn.LSTMCell``'s init, drawn in its order: U(-1/sqrt(H), 1/sqrt(H)) for every tensor."""
    hidden = _positive_int(kw.get("hidden_size"), "hidden_size", where)
    if len(shape) != 1:
        raise GraphError(f"{where}: needs a 1-D input (batch, features), got per-step shape {list(shape)}")
    g = gates * hidden
    shapes = {"weight_ih": (g, shape[0]), "weight_hh": (g, hidden), "bias_ih": (g,), "bias_hh": (g,)}
    out = {}
    for key, s in shapes.items():
        if key.startswith("bias") and not kw.get("bias", True):
            if kw.get(key) is not None:
                raise GraphError(f"{where}: {key} given with bias=False")
            out[key] = None
        else:
            out[key] = _given(kw, key, lambda s=s, key=key: uniform_fan_in(s, hidden, f"{where} {key}"), s, where)
    return out


# --- conv2d (one convolution over [x, h]) ---------------------------------------------------------------
def conv_padding(weight_shape: tuple[int, ...]) -> tuple[int, int]:
    """snnTorch's ``kernel_size // 2`` padding (the state keeps its height and width)."""
    return weight_shape[2] // 2, weight_shape[3] // 2


def _conv_shape(f: dict[str, Any], gates: int, shape: tuple[int, ...]) -> tuple[int, ...] | str:
    w, b = f["conv_weight"], f["conv_bias"]
    if w is None or w.value.ndim != 4 or w.shape[0] % gates:
        return f"needs a 4-D conv.weight [{gates}*C, C_in + C, kh, kw]"
    channels = w.shape[0] // gates
    if len(shape) != 3 or w.shape[1] != shape[0] + channels:
        return (f"needs a (C_in, H, W) input with conv.weight [{gates}*C, C_in + C, kh, kw]; got input {list(shape)} "
                f"and conv.weight {list(w.shape)}")
    if w.shape[2] % 2 == 0 or w.shape[3] % 2 == 0:
        return f"needs odd kernel sizes (padding k // 2 keeps the state's size), got {list(w.shape[2:])}"
    if b is not None and b.shape != (w.shape[0],):
        return f"conv.bias must have shape [{w.shape[0]}]"
    return (channels, *shape[1:])


def _conv_build(shape: tuple[int, ...], gates: int, kw: dict[str, Any], where: str) -> dict[str, Any]:
    """``torch.nn.Conv2d``'s init of a ``C_in + C -> gates * C`` convolution."""
    channels = _positive_int(kw.get("out_channels"), "out_channels", where)
    size = kw.get("kernel_size")
    size = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else size
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise GraphError(f"{where}: kernel_size must be an int or a pair, got {kw.get('kernel_size')!r}")
    kh, kw_ = (_positive_int(k, "kernel_size", where) for k in size)
    if kh % 2 == 0 or kw_ % 2 == 0:
        raise GraphError(f"{where}: kernel_size must be odd (padding k // 2 keeps the state's size; snnTorch 1.0.0 "
                         f"fails on even sizes), got {(kh, kw_)}")
    if len(shape) != 3:
        raise GraphError(f"{where}: needs a (C, H, W) input, got per-step shape {list(shape)}")
    w_shape = (gates * channels, shape[0] + channels, kh, kw_)
    out = {"conv_weight": _given(kw, "conv_weight", lambda: kaiming_weight(w_shape, f"{where} conv.weight"),
                                 w_shape, where)}
    fan_in = (shape[0] + channels) * kh * kw_
    out["conv_bias"] = None if not kw.get("bias", True) else _given(
        kw, "conv_bias", lambda: uniform_fan_in((w_shape[0],), fan_in, f"{where} conv.bias"), (w_shape[0],), where)
    return out


CELLS: dict[str, CellKind] = {
    "linear": CellKind(
        {"weight_ih": "lstm_cell.weight_ih", "weight_hh": "lstm_cell.weight_hh", "bias_ih": "lstm_cell.bias_ih",
         "bias_hh": "lstm_cell.bias_hh"},
        {"hidden_size": None, "bias": True, "weight_ih": None, "weight_hh": None, "bias_ih": None, "bias_hh": None},
        _linear_shape, _linear_build),
    "conv2d": CellKind(
        {"conv_weight": "conv.weight", "conv_bias": "conv.bias"},
        {"out_channels": None, "kernel_size": None, "bias": True, "conv_weight": None, "conv_bias": None},
        _conv_shape, _conv_build),
}
"""Cell kind -> its declaration."""


def cell_fields(kind: str) -> dict[str, str]:
    """Node field -> public name of a cell kind's parameters."""
    return CELLS[kind].fields


def cell_kind(model: Any) -> CellKind:
    """The cell kind of a cell model: a fixed one, or the one its ``heads`` declare."""
    if model.cell != "heads":
        return CELLS[model.cell]
    entry = _HEADS.get(model.name)
    if entry is None or entry[0] is not model:
        from snngraph.ir.model_heads import heads_kind

        entry = _HEADS[model.name] = (model, heads_kind(model))
    return entry[1]


_HEADS: dict[str, tuple[Any, CellKind]] = {}
