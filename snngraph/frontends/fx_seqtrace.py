"""Shape-carrying symbolic tracing of a whole-sequence model (``forward`` takes ``(T, B, ...)``).

Models written for SpikingJelly's multi-step mode read the sequence's shape in ``forward``
(``T, N, C, H, W = x.shape``, ``if x.ndim != 5: raise``, ``x.reshape(T, N, ...)``), which plain
``torch.fx`` proxies cannot answer. Here every traced value carries a ``meta`` tensor (no data),
computed op by op as the trace goes, so ``x.shape``, ``x.size()``, ``x.dim()`` and ``x.ndim`` are
concrete Python values and the model's own shape logic runs as written. Each fx node keeps its
meta value in ``node.meta["seq"]`` (a tensor, or a tuple of them for ``chunk``).

The trace runs on a stand-in sequence whose ``T`` and ``B`` are two distinct primes larger than
every other size of the model's input (:func:`stand_in_dims`), so the translation tells the time and
batch dims (and their product, a merged ``T*B`` dim) from every other dim by their size alone: a
reshape to ``(T, N, 3, heads, d, L)`` reads as "T and B stay in front", one to ``(T, N * C, L)``
has a dim of size ``B * C`` and is refused.

Leaf modules: spiking neurons return a value of their input's shape (they are never run); other
leaves run on a copy of themselves moved to the meta device.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
from torch import Tensor, fx, nn

from snngraph.frontends.fx_neurons import is_neuron_module
from snngraph.frontends.fx_spikingjelly import _CONTAINERS, LAYERS, _sj_class
from snngraph.frontends.fx_tracer import _Tracer

_FIRST_PRIME = 1009


class MetaError(RuntimeError):
    """An op of the traced model failed on the stand-in sequence (reported with the model's line)."""


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % p for p in range(2, int(n**0.5) + 1))


def stand_in_dims(examples: tuple[Any, ...]) -> tuple[int, int]:
    """``(T, B)`` of the stand-in sequence: the two smallest primes above every feature size of the
    examples and above 1000 (sizes that no layer of the model has by chance)."""
    sizes = [int(s) for e in examples if isinstance(e, Tensor) for s in e.shape[2:]]
    n = max([_FIRST_PRIME - 1, *sizes]) + 1
    found: list[int] = []
    while len(found) < 2:
        if _is_prime(n):
            found.append(n)
        n += 1
    return found[0], found[1]


class MetaProxy(fx.Proxy):
    """An fx proxy that knows the shape and dtype of its value (``node.meta["seq"]``)."""

    def _meta(self) -> Any:
        meta = self.node.meta.get("seq")
        if meta is None:
            raise MetaError(f"the shape of {self.node.name} is unknown")
        return meta

    @property
    def shape(self) -> torch.Size:
        return self._meta().shape

    @property
    def ndim(self) -> int:
        return self._meta().dim()

    @property
    def dtype(self) -> torch.dtype:
        return self._meta().dtype

    def size(self, dim: int | None = None) -> Any:
        meta = self._meta()
        return meta.size() if dim is None else meta.size(dim)

    def dim(self) -> int:
        return self._meta().dim()

    def numel(self) -> int:
        return self._meta().numel()

    def __len__(self) -> int:
        return len(self._meta())


class SequenceTracer(_Tracer):
    """``torch.fx`` tracing of a whole-sequence model with a meta value for every node."""

    def __init__(self, metas: dict[str, Tensor], dims: tuple[int, int]):
        super().__init__()
        self.metas = metas  # placeholder name -> meta input
        self.dims = dims
        self._computing = False
        self._leaf_copies: dict[str, nn.Module] = {}

    def proxy(self, node: fx.Node) -> MetaProxy:
        return MetaProxy(node, self)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """SpikingJelly's composite layers (``layer.SpikingSelfAttention``...) are traced through; its
        known layers and containers are leaves."""
        cls = _sj_class(m, "layer")
        if cls is not None and cls.__name__ not in (*LAYERS, *_CONTAINERS):
            return False
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        if self._computing:  # a child called while a leaf runs on meta values: a plain call
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if self._computing:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def create_proxy(self, kind: str, target: Any, args: tuple, kwargs: dict, name: str | None = None,
                     type_expr: Any = None, proxy_factory_fn: Any = None) -> Any:
        rv = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if isinstance(rv, fx.Proxy):
            rv.node.meta["seq"] = self._compute(kind, target, args, kwargs)
        return rv

    def _compute(self, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
        if kind == "placeholder":
            return self.metas.get(target)
        if kind == "get_attr":
            value = self.root
            for part in str(target).split("."):
                value = getattr(value, part)
            return value.to("meta") if isinstance(value, Tensor) else None
        margs = fx.node.map_aggregate(args, _to_meta)
        mkwargs = fx.node.map_aggregate(kwargs, _to_meta)
        self._computing = True
        try:
            if kind == "call_function":
                return target(*margs, **mkwargs)
            if kind == "call_method":
                return getattr(margs[0], target)(*margs[1:], **mkwargs)
            module = self.root.get_submodule(target)
            if is_neuron_module(module):
                return torch.empty_like(margs[0]) if margs and isinstance(margs[0], Tensor) else None
            if target not in self._leaf_copies:
                self._leaf_copies[target] = copy.deepcopy(module).to("meta")
            return self._leaf_copies[target](*margs, **mkwargs)
        except MetaError:
            raise
        except Exception as exc:  # noqa: BLE001 - the op cannot run on this sequence: say which and why
            what = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
            t, b = self.dims
            reason = str(exc).replace(f"{t}, {b}", "T, B").replace(str(t * b), "T*B")
            raise MetaError(f"{kind.removeprefix('call_')} {what} fails on the (T, B, ...) sequence: "
                            f"{type(exc).__name__}: {reason}") from None
        finally:
            self._computing = False


def _to_meta(value: Any) -> Any:
    if isinstance(value, MetaProxy):
        return value._meta()
    if isinstance(value, fx.Proxy):
        raise MetaError(f"value {value.node.name} has no shape")
    if isinstance(value, Tensor):
        return value.to("meta")
    return value


def sequence_tracer(module: nn.Module, examples: tuple[Any, ...], dims: tuple[int, int]) -> SequenceTracer:
    """The tracer of ``module`` on stand-in sequences of ``dims`` ``(T, B)`` in place of ``examples``."""
    params = [p for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    metas = {}
    for param, example in zip(params, examples, strict=False):
        if isinstance(example, Tensor):
            metas[param.name] = torch.empty((*dims, *example.shape[2:]), dtype=example.dtype, device="meta")
    return SequenceTracer(metas, dims)
