"""Hook-based monitors with snnTorch 1.0.0's ``functional.probe`` names, constructors and attributes.

A monitor hooks every sub-module of ``net`` (``net`` itself included) that is an ``instance``
and records, per call, what the class names: ``OutputMonitor`` the forward output,
``InputMonitor`` the forward input, ``AttributeMonitor`` an attribute (``mem``, ``syn``...) before
or after the forward pass, ``GradInputMonitor`` / ``GradOutputMonitor`` the gradients with
respect to the module's inputs / outputs in the backward pass. Records go to ``records`` in call
order; ``monitor[i]`` is the i-th record and ``monitor['lif1']`` the list of a layer's records.
A length-1 tuple is recorded as its element, as in snnTorch.

On ``sg.nn`` models every layer is a module, so each neuron's spikes, input, state and gradients
are observable as in snnTorch. On a compiled net (``sg.compile(g)``) the net runs, and so do its
synapse modules (``nn.Linear``, ``nn.Conv2d``, ... : ``instance=nn.Linear`` records each call, over
all ``T*B`` rows at once, see ``runtimes/torch/layers.py``); its neuron nodes are parameter holders
(``NodeParams``), never called, since each population's time loop runs as one kernel. Monitor the
net (``instance=None`` defaults to ``type(net)``): its input sequences ``(T, B, ...)``, its output
dict ``{name: (T, B, ...)}`` and the gradients of both (``GradOutputMonitor`` records a dict
``{name: grad}``). Neuron states are observed by making them graph outputs
(``g.output("mem1", lif1.mem)``).

Departures from snnTorch 1.0.0, each a crash there:

- ``instance`` may be a module instance (or a tuple mixing instances and classes), as snnTorch's
  own examples pass it (``instance=snn.Leaky()``); it stands for its class;
- ``AttributeMonitor``'s ``instance=None`` means ``type(net)`` like the other monitors, its
  ``pre_forward=True`` hook takes the pre-hook's arguments, and it reads plain attributes as
  well as buffers and parameters;
- gradient monitors on compiled nets record the gradients: torch's module backward hooks never
  fire for a module returning a dict, so there the inputs / outputs pass through an identity
  autograd function whose backward records them (``GradInputMonitor`` records a tuple, or the
  tensor itself for one input, of the gradients of the inputs that require grad).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["AttributeMonitor", "BaseMonitor", "GradInputMonitor", "GradOutputMonitor", "InputMonitor",
           "OutputMonitor", "unpack_len1_tuple"]


def unpack_len1_tuple(x: Any) -> Any:
    """A length-1 tuple's element; anything else unchanged."""
    return x[0] if isinstance(x, tuple) and len(x) == 1 else x


def _classes(net: nn.Module, instance: Any) -> tuple[type, ...]:
    if instance is None:
        return (type(net),)
    items = instance if isinstance(instance, tuple) else (instance,)
    return tuple(item if isinstance(item, type) else type(item) for item in items)


def _identity(x: Any) -> Any:
    return x


class BaseMonitor:
    """Records, hooks and the enable switch shared by the monitors (snnTorch's ``BaseMonitor``)."""

    def __init__(self) -> None:
        self.hooks: list[Any] = []
        self.monitored_layers: list[str] = []
        self.records: list[Any] = []
        self.name_records_index: dict[str, list[int]] = {}
        self._enable = True

    def __getitem__(self, i: int | str) -> Any:
        if isinstance(i, int):
            return self.records[i]
        if isinstance(i, str):
            return [self.records[index] for index in self.name_records_index[i]]
        raise ValueError(i)

    def _watch(self, net: nn.Module, instance: Any, attach: Callable[[str, nn.Module], Any]) -> None:
        classes = _classes(net, instance)
        for name, module in net.named_modules():
            if isinstance(module, classes):
                self.monitored_layers.append(name)
                self.name_records_index[name] = []
                self.hooks.append(attach(name, module))

    def _record(self, name: str, value: Any) -> None:
        if self._enable:
            self.name_records_index[name].append(len(self.records))
            self.records.append(value)

    def clear_recorded_data(self) -> None:
        self.records.clear()
        for index in self.name_records_index.values():
            index.clear()

    def enable(self) -> None:
        self._enable = True

    def disable(self) -> None:
        self._enable = False

    def is_enable(self) -> bool:
        return self._enable

    def remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()

    def __del__(self) -> None:
        self.remove_hooks()


class OutputMonitor(BaseMonitor):
    """Record ``function_on_output(output)`` of every ``instance`` module after each forward call."""

    def __init__(self, net: nn.Module, instance: Any = None, function_on_output: Callable = _identity):
        super().__init__()
        self.function_on_output = function_on_output
        self._watch(net, instance, lambda name, m: m.register_forward_hook(self.create_hook(name)))

    def create_hook(self, name: str) -> Callable:
        def hook(m: nn.Module, x: Any, y: Any) -> None:
            if self.is_enable():
                self._record(name, self.function_on_output(unpack_len1_tuple(y)))

        return hook


class InputMonitor(BaseMonitor):
    """Record ``function_on_input(input)`` of every ``instance`` module at each forward call."""

    def __init__(self, net: nn.Module, instance: Any = None, function_on_input: Callable = _identity):
        super().__init__()
        self.function_on_input = function_on_input
        self._watch(net, instance, lambda name, m: m.register_forward_hook(self.create_hook(name)))

    def create_hook(self, name: str) -> Callable:
        def hook(m: nn.Module, x: Any, y: Any) -> None:
            if self.is_enable():
                self._record(name, self.function_on_input(unpack_len1_tuple(x)))

        return hook


class AttributeMonitor(BaseMonitor):
    """Record ``function_on_attribute(module.<attribute_name>)`` before (``pre_forward``) or after
    each forward call of every ``instance`` module."""

    def __init__(self, attribute_name: str, pre_forward: bool, net: nn.Module, instance: Any = None,
                 function_on_attribute: Callable = _identity):
        super().__init__()
        self.attribute_name = attribute_name
        self.function_on_attribute = function_on_attribute
        if pre_forward:
            self._watch(net, instance, lambda name, m: m.register_forward_pre_hook(self.create_hook(name)))
        else:
            self._watch(net, instance, lambda name, m: m.register_forward_hook(self.create_hook(name)))

    def create_hook(self, name: str) -> Callable:
        def hook(m: nn.Module, *args: Any) -> None:
            if self.is_enable():
                self._record(name, self.function_on_attribute(getattr(m, self.attribute_name)))

        return hook


class _GradTap(torch.autograd.Function):
    """Identity on tensors whose backward hands the incoming gradients to ``callback``."""

    @staticmethod
    def forward(ctx: Any, callback: Callable[[tuple[Tensor, ...]], None], *tensors: Tensor) -> tuple[Tensor, ...]:
        ctx.callback = callback
        return tuple(t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Any, ...]:
        ctx.callback(grads)
        return (None, *grads)


def _tap_dict(out: dict, callback: Callable[[dict], None]) -> dict | None:
    """``out`` with its grad-requiring tensors passed through a :class:`_GradTap`."""
    keys = [k for k, v in out.items() if isinstance(v, Tensor) and v.requires_grad]
    if not keys or not torch.is_grad_enabled():
        return None
    tapped = _GradTap.apply(lambda grads: callback(dict(zip(keys, grads, strict=True))), *(out[k] for k in keys))
    return {**out, **dict(zip(keys, tapped, strict=True))}


class _GradMonitor(BaseMonitor):
    """Module full backward hooks; for dict-returning modules, taps on the inputs or outputs."""

    _side = ""  # "input" or "output"

    def __init__(self, net: nn.Module, instance: Any, function: Callable):
        super().__init__()
        self._function = function
        self._watch(net, instance, self._attach)

    def _attach(self, name: str, module: nn.Module) -> Any:
        from snngraph.runtimes.torch.module import CompiledNet

        if not isinstance(module, CompiledNet):
            return module.register_full_backward_hook(self.create_hook(name))
        if self._side == "input":
            return module.register_forward_pre_hook(self._dict_input_tap(name), with_kwargs=True)
        return module.register_forward_hook(self._dict_output_tap(name))

    def create_hook(self, name: str) -> Callable:
        def hook(m: nn.Module, grad_input: Any, grad_output: Any) -> None:
            if self.is_enable():
                grads = grad_input if self._side == "input" else grad_output
                self._record(name, self._function(unpack_len1_tuple(grads)))

        return hook

    def _dict_output_tap(self, name: str) -> Callable:
        def hook(m: nn.Module, x: Any, y: Any) -> Any:
            if isinstance(y, dict):
                return _tap_dict(y, lambda grads: self._record(name, self._function(grads)))
            return None

        return hook

    def _dict_input_tap(self, name: str) -> Callable:
        def hook(m: nn.Module, args: tuple, kwargs: dict) -> Any:
            given = {i: a for i, a in enumerate(args)} | kwargs
            tapped = _tap_dict(given, lambda grads: self._record(name, self._function(unpack_len1_tuple(
                tuple(grads.values())))))
            if tapped is None:
                return None
            return tuple(tapped[i] for i in range(len(args))), {k: tapped[k] for k in kwargs}

        return hook


class GradInputMonitor(_GradMonitor):
    """Record ``function_on_grad_input(grad_input)``, the gradients with respect to the inputs of
    every ``instance`` module, in each backward pass."""

    _side = "input"

    def __init__(self, net: nn.Module, instance: Any = None, function_on_grad_input: Callable = _identity):
        self.function_on_grad_input = function_on_grad_input
        super().__init__(net, instance, function_on_grad_input)


class GradOutputMonitor(_GradMonitor):
    """Record ``function_on_grad_output(grad_output)``, the gradients with respect to the outputs
    of every ``instance`` module, in each backward pass."""

    _side = "output"

    def __init__(self, net: nn.Module, instance: Any = None, function_on_grad_output: Callable = _identity):
        self.function_on_grad_output = function_on_grad_output
        super().__init__(net, instance, function_on_grad_output)
