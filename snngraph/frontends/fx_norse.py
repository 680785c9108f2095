"""Norse 1.1.0 cells and ``SequentialState`` in ``sg.trace``.

Norse's cells (``LIFCell``, ``LIFBoxCell``, ``LICell``, ``LIFRecurrentCell``) are traced as leaves and
become the declared models ``norse_lif``, ``norse_lif_box``, ``norse_li`` and ``norse_lif_recurrent``
(:mod:`snngraph.models.norse_lif`). Their calling convention is ``out, state = cell(x, state)``: called
with ``state=None`` (a fresh state, Norse's way of starting) the graph carries the state; called with
a ``forward`` argument the argument is recognised as that state, as for snnTorch's explicit style.
The returned state is a named tuple of the node's ports under Norse's field names (``state.v``,
``state.i``; ``z`` is the spikes), so returning it makes its fields graph outputs.

Parameters are read from the cell's ``p`` (``LIFParameters`` ...) and ``dt``; tensors keep their shape
(per-neuron values) and dtype, and an ``nn.Parameter`` with ``requires_grad`` becomes learnable. Only
Norse's default spike function ``method="super"`` is supported (its SuperSpike, see
:mod:`snngraph.models.norse_common`); other methods raise ``GraphError``.

``LIFRecurrentCell``'s ``input_weights`` become a ``linear`` node without bias named ``<cell>_input``
and its ``recurrent_weights`` the node's ``recurrent.weight`` (no bias); the compiled net keeps them
under Norse's keys ``<cell>.input_weights`` and ``<cell>.recurrent_weights``
(:mod:`snngraph.runtimes.torch.state_keys`), so Norse's ``state_dict`` loads both ways. ``SequentialState`` runs its
children in order, the stateful ones with a fresh state, and returns ``(out, states)`` with the states
of its stateful children only.

Norse is never imported here: classes are matched by name and module.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from snngraph.ir.errors import GraphError
from snngraph.ir.model import get_model

if TYPE_CHECKING:
    from snngraph.frontends.fx import Translator
    from snngraph.ir.graph import Handle

CELLS = {"LIFCell": "norse_lif", "LIFBoxCell": "norse_lif_box", "LICell": "norse_li",
         "LIFRecurrentCell": "norse_lif_recurrent"}
"""Norse cell class -> IR op."""
_STATE_FIELDS = {"norse_lif": ("v", "i"), "norse_lif_box": ("v",), "norse_li": ("v", "i"),
                 "norse_lif_recurrent": ("z", "v", "i")}
_STATE_NAMES = {"norse_lif": "LIFFeedForwardState", "norse_lif_box": "LIFBoxFeedForwardState",
                "norse_li": "LIState", "norse_lif_recurrent": "LIFState"}
STATES = {op: collections.namedtuple(_STATE_NAMES[op], fields) for op, fields in _STATE_FIELDS.items()}
"""IR op -> the named tuple standing for the Norse state its call returns (fields are graph values)."""


def _is_norse(cls: type) -> bool:
    mod = cls.__module__ or ""
    return mod == "norse" or mod.startswith("norse.")


def norse_cell_op(module: nn.Module) -> str | None:
    """The IR op of a Norse cell (or a subclass keeping its forward), else ``None``."""
    for cls in type(module).__mro__:
        if cls.__name__ in CELLS and _is_norse(cls):
            return CELLS[cls.__name__]
    return None


def is_sequential_state(module: nn.Module) -> bool:
    """Whether ``module`` is Norse's ``SequentialState``."""
    return any(cls.__name__ == "SequentialState" and _is_norse(cls) for cls in type(module).__mro__)


def sequential_forward(module: nn.Module, input_tensor: Any, state: Any = None) -> tuple[Any, list[Any]]:
    """``SequentialState.forward`` for tracing: children in order, stateful ones from a fresh state.

    A ``state`` given as a ``forward`` argument of an outer module is ignored (the graph carries every
    child's state); returns ``(out, [state of each stateful child])``."""
    if state is not None and not _is_placeholder(state):
        raise GraphError("SequentialState: sg.trace takes it with state=None or a forward argument as its state")
    states = []
    for child, stateful in zip(module, module.stateful_layers, strict=True):
        if stateful:
            input_tensor, s = child(input_tensor)
            states.append(s)
        else:
            input_tensor = child(input_tensor)
    return input_tensor, states


def _is_placeholder(value: Any) -> bool:
    node = getattr(value, "node", None)
    return getattr(node, "op", None) == "placeholder"


class SequentialRoot(nn.Module):
    """Holds a ``SequentialState`` traced by itself: its children under their own names (``0``, ``1``...),
    so the graph's parameter paths are the model's."""

    def __init__(self, seq: nn.Module):
        super().__init__()
        self.stateful_layers = list(seq.stateful_layers)
        for key, child in seq.named_children():
            self.add_module(key, child)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, input_tensor: Tensor) -> tuple[Any, list[Any]]:
        return sequential_forward(self, input_tensor)


# --- reading a cell ------------------------------------------------------------------------------------
def _param(value: Any, key: str, where: str) -> tuple[Any, bool]:
    """A parameter value (tensor kept as is) and whether it trains."""
    if isinstance(value, Tensor):
        return value.detach().cpu().clone(), isinstance(value, nn.Parameter) and value.requires_grad
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), False
    raise GraphError(f"{where}: parameter {key} must be a number or tensor, got {type(value).__name__}")


def _check_method(p: Any, where: str) -> None:
    method = getattr(p, "method", "super")
    if method != "super":
        raise GraphError(f"{where}: Norse's method={method!r} is not supported by sg.trace (supported: 'super', "
                         "Norse's default SuperSpike)")


def _reset_method(p: Any, where: str) -> str:
    fn = getattr(p, "reset_method", None)
    name = getattr(fn, "__name__", "")
    if name in ("reset_value", "reset_subtract") and _is_norse_fn(fn):
        return name.removeprefix("reset_")
    raise GraphError(f"{where}: reset_method {name or fn!r} is not supported by sg.trace (Norse's reset_value, "
                     "reset_subtract)")


def _is_norse_fn(fn: Any) -> bool:
    mod = getattr(fn, "__module__", "") or ""
    return mod.startswith("norse.")


def add_norse_cell(tr: Translator, x: Handle, module: nn.Module, op: str, name: str, where: str,
                   target: str | None = None) -> Handle:
    """Add the IR node(s) of Norse cell ``module`` (at module path ``target``) fed by ``x``; return the
    neuron's handle. A recurrent cell's two weights keep Norse's keys ``<target>.input_weights`` and
    ``<target>.recurrent_weights`` (``module_paths`` entries of the input linear's and the neuron's
    parameters)."""
    model = get_model(op, where)
    p = module.p
    if model.spiking:
        _check_method(p, where)
    kw: dict[str, Any] = {}
    for key, spec in model.params.items():
        value = module.dt if key == "dt" else getattr(p, key)
        kw[key], learn = _param(value, key, where)
        if learn:
            if not spec.learnable:
                raise GraphError(f"{where}: {key} cannot be learnt in snngraph's {op}")
            kw[f"learn_{key}"] = True
    if "reset_method" in model.options:
        kw["reset_method"] = _reset_method(p, where)
    if model.recurrent:
        x = _input_weights(tr, x, module, name, where)
        w = module.recurrent_weights
        kw.update(all_to_all=True, recurrent_weight=w.detach().cpu().clone(), recurrent_bias=False,
                  learn_recurrent=bool(w.requires_grad))
        if target is not None:
            tr.paths[f"{x.name}.weight"] = f"{target}.input_weights"
            tr.paths[f"{name}.recurrent.weight"] = f"{target}.recurrent_weights"
    return tr.g.neuron(op, x, name=name, **kw)


def _input_weights(tr: Translator, x: Handle, module: nn.Module, name: str, where: str) -> Handle:
    w = module.input_weights
    if not isinstance(w, Tensor) or w.dim() != 2:
        raise GraphError(f"{where}: input_weights must be a (hidden, input) matrix")
    linear = tr.g.linear(x, int(w.shape[0]), bias=False, weight=w.detach().cpu().clone(),
                         name=tr.unique(f"{name}_input", helper=False))
    tr.learnable(linear.name, weight=w)
    return linear


def state_tuple(op: str, handle: Handle) -> tuple:
    """The named tuple of graph values standing for the state a Norse cell returns."""
    fields = _STATE_FIELDS[op]
    return STATES[op](*(getattr(handle, "spk" if f == "z" else f) for f in fields))
