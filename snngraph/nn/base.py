"""Base classes of the per-step neuron modules: hidden state, spiking hyper-parameters and ``beta``.

Hidden state belongs to the instance: there is no class-level registry (snnTorch keeps every
neuron ever built in ``SpikingNeuron.instances``, so they are never garbage collected).
"""

from __future__ import annotations

import abc
import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from snngraph.ir.errors import GraphError, GraphTypeError
from snngraph.runtimes.torch.kernels import RESET_MECHANISMS
from snngraph.surrogate import atan

__all__ = ["LIF", "FiringNeuron", "SpikingNeuron"]

RESET_DICT = {name: i for i, name in enumerate(RESET_MECHANISMS)}  # snnTorch's reset_mechanism_val


def register_value(module: nn.Module, name: str, value: Any, learn: bool) -> None:
    """snnTorch's ``_*_buffer``: a tensor (``torch.as_tensor`` of numbers) as parameter or buffer."""
    if not isinstance(value, Tensor):
        value = torch.as_tensor(value)
    if learn:
        setattr(module, name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


def _binds(fn: Any, args: tuple, kwargs: dict) -> bool:
    """Whether ``fn`` accepts ``args`` and ``kwargs`` (a ``TypeError`` raised inside it is not misuse)."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _no_gradient_spike(input_: Tensor) -> Tensor:
    """snnTorch's ``surrogate_disable``: the bare Heaviside step, with no gradient."""
    return (input_ > 0).to(input_.dtype)


def _sync_reset_mechanism(module: nn.Module, incompatible_keys: Any) -> None:
    """After ``load_state_dict``, follow the loaded ``reset_mechanism_val`` like snnTorch does."""
    module._reset_mechanism = RESET_MECHANISMS[int(module.reset_mechanism_val)]


class SpikingNeuron(nn.Module, abc.ABC):
    """Base of every ``snngraph.nn`` neuron (the non-spiking LI readout included).

    It owns the hidden state named by ``state_names`` (non-persistent buffers, as in snnTorch,
    so ``.to()`` moves them and ``state_dict`` leaves them out). With ``init_hidden=True`` the
    state lives on the instance between calls and ``forward`` returns only the output (plus the
    state when ``output=True``); otherwise the caller passes the state and gets it back, and
    omitted or empty state starts at zero.
    """

    state_names: ClassVar[tuple[str, ...]] = ()
    output_is_state: ClassVar[bool] = False  # recurrent neurons: the spike output is the first state

    def __init__(self, init_hidden: bool = False, output: bool = False):
        super().__init__()
        self.init_hidden = init_hidden
        self.output = output
        for name in self.state_names:
            self.register_buffer(name, torch.zeros(0), persistent=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``forward``, with the misuse snnTorch reports as ``TypeError`` (arguments that do not fit
        ``forward``, state passed to an ``init_hidden`` neuron) raised as ``GraphTypeError``, which
        is both an ``sg.GraphError`` and a ``TypeError``."""
        try:
            return super().__call__(*args, **kwargs)
        except TypeError as e:
            if isinstance(e, GraphError) or _binds(self.forward, args, kwargs):
                raise
            raise GraphTypeError(f"{type(self).__name__}: {e}") from None

    @abc.abstractmethod
    def _step(self, input_: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """Run the neuron's kernel: ``(out, *new_state)``, or ``new_state`` if ``output_is_state``."""

    def _run(self, input_: Tensor, given: tuple[Tensor | None, ...]) -> Any:
        """Resolve the state, step, keep the state when ``init_hidden`` and shape the result."""
        if not isinstance(input_, Tensor):
            raise GraphTypeError(f"{type(self).__name__}: input_ must be a torch.Tensor, got {type(input_).__name__}")
        state = self._hidden_state(input_, given) if self.init_hidden else self._given_state(input_, given)
        result = self._step(input_, *state)
        if not self.init_hidden:
            return result
        new_state = result if self.output_is_state else result[1:]
        for name, value in zip(self.state_names, new_state, strict=True):
            setattr(self, name, value)
        return result if self.output else result[0]

    def _hidden_state(self, input_: Tensor, given: tuple[Tensor | None, ...]) -> tuple[Tensor, ...]:
        if any(value is not None for value in given):
            raise GraphTypeError(
                f"{type(self).__name__}: do not pass {', '.join(self.state_names)} when init_hidden=True; "
                "the state is kept on the module"
            )
        stored = (getattr(self, name) for name in self.state_names)
        shape = self._state_shape(input_)
        return tuple(s if s.shape == shape else input_.new_zeros(shape) for s in stored)

    def _state_shape(self, input_: Tensor) -> torch.Size:
        """The state's shape for ``input_``: the same (cells such as ``SLSTM`` change the features)."""
        return input_.shape

    def _given_state(self, input_: Tensor, given: tuple[Tensor | None, ...]) -> tuple[Tensor, ...]:
        state, shape = [], self._state_shape(input_)
        for name, value in zip(self.state_names, given, strict=True):
            if value is not None and not isinstance(value, Tensor):
                raise GraphTypeError(f"{type(self).__name__}: state {name!r} must be a torch.Tensor or None, "
                                     f"got {type(value).__name__}")
            if value is None or value.numel() == 0:
                value = input_.new_zeros(shape)
            elif value.shape != shape:
                raise GraphError(
                    f"{type(self).__name__}: state {name!r} has shape {tuple(value.shape)} "
                    f"but the input has shape {tuple(input_.shape)}"
                    + (f" (the state's is {tuple(shape)})" if shape != input_.shape else "")
                )
            state.append(value)
        return tuple(state)

    def reset_hidden(self) -> None:
        """Zero this instance's hidden state (keeping its shape, dtype and device)."""
        for name in self.state_names:
            setattr(self, name, torch.zeros_like(getattr(self, name)))

    def detach_hidden(self) -> None:
        """Detach this instance's hidden state from the autograd graph (truncated BPTT)."""
        for name in self.state_names:
            setattr(self, name, getattr(self, name).detach())

    def reset_mem(self) -> Tensor | tuple[Tensor, ...]:
        """Zero the hidden state and return it (one tensor or a tuple, in ``state_names`` order)."""
        self.reset_hidden()
        state = tuple(getattr(self, name) for name in self.state_names)
        return state[0] if len(state) == 1 else state


class FiringNeuron(SpikingNeuron):
    """A spiking neuron: threshold, spike function, reset mechanism and graded spikes.

    Arguments and attribute names are snnTorch 1.0.0's ``SpikingNeuron``'s. ``spike_grad`` may
    be an ``sg.surrogate`` spec, an snnTorch surrogate or any callable; ``None`` means
    ``sg.surrogate.atan()``. ``inhibition=True`` (only each sample's largest membrane may spike) and
    ``state_quant`` (a quantiser of the state, e.g. ``sg.functional.state_quant()``) are computed by
    the neurons whose class lists them in ``snntorch_options`` (snnTorch's ``Leaky``, ``Synaptic``,
    ``Alpha``, ``Lapicque``, ``RLeaky``, ``RSynaptic``, and ``IntegrateFire``); the others refuse them.
    """

    snntorch_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        graded_spikes_factor: Any = 1.0,
        learn_graded_spikes_factor: bool = False,
    ):
        super().__init__(init_hidden=init_hidden, output=output)
        for option, value in (("inhibition", inhibition), ("state_quant", state_quant)):
            if value is not False and value is not None and option not in self.snntorch_options:
                raise GraphError(f"{type(self).__name__}: {option} is not supported by snngraph")
        if not isinstance(inhibition, bool):
            raise GraphTypeError(f"{type(self).__name__}: inhibition must be a bool, got {inhibition!r}")
        if state_quant is not False and state_quant is not None and not callable(state_quant):
            raise GraphTypeError(f"{type(self).__name__}: state_quant must be a quantiser (a callable such as "
                                 f"sg.functional.state_quant()) or False, got {state_quant!r}")
        if spike_grad is not None and not callable(spike_grad):
            raise GraphTypeError(f"{type(self).__name__}: spike_grad must be callable, got {spike_grad!r}")
        self.inhibition = inhibition
        self.state_quant = state_quant
        self.surrogate_disable = surrogate_disable
        if surrogate_disable:
            self.spike_grad = _no_gradient_spike
        else:
            self.spike_grad = atan() if spike_grad is None else spike_grad
        register_value(self, "threshold", threshold, learn_threshold)
        register_value(self, "graded_spikes_factor", graded_spikes_factor, learn_graded_spikes_factor)
        self.register_buffer("reset_mechanism_val", torch.as_tensor(0))
        self.reset_mechanism = reset_mechanism
        self.register_load_state_dict_post_hook(_sync_reset_mechanism)

    @property
    def reset_mechanism(self) -> str:
        """``"subtract"``, ``"zero"`` or ``"none"``; setting it updates ``reset_mechanism_val``."""
        return self._reset_mechanism

    @reset_mechanism.setter
    def reset_mechanism(self, value: str) -> None:
        if value not in RESET_DICT:
            raise GraphError(f"{type(self).__name__}: reset_mechanism must be one of {RESET_MECHANISMS}, got {value!r}")
        self.reset_mechanism_val = torch.as_tensor(RESET_DICT[value], device=self.reset_mechanism_val.device)
        self._reset_mechanism = value

    def fire(self, mem: Tensor) -> Tensor:
        r"""The spikes of membrane ``mem`` (snnTorch's ``SpikingNeuron.fire``), with the spike
        function's gradient: :math:`S = g\,H(U - \theta)`, ``g`` the graded-spikes factor.

        ``AdaptiveLeaky`` fires against its base ``threshold`` here (its adaptation is state).
        """
        return self.spike_grad(mem - self.threshold) * self.graded_spikes_factor

    def mem_reset(self, mem: Tensor) -> Tensor:
        r"""The detached reset signal :math:`R = H(U - \theta)` of membrane ``mem`` (snnTorch's
        ``SpikingNeuron.mem_reset``): 1 where ``mem`` is above threshold, without the
        graded-spikes factor and without gradient."""
        return self.spike_grad(mem - self.threshold).clone().detach()

    def _fire_kwargs(self) -> dict[str, Any]:
        """The hyper-parameters every spiking kernel takes."""
        kwargs = {
            "threshold": self.threshold,
            "spike_grad": self.spike_grad,
            "reset_mechanism": self.reset_mechanism,
            "graded_spikes_factor": self.graded_spikes_factor,
        }
        if self.inhibition:
            kwargs["inhibition"] = True
        if self.state_quant is not False and self.state_quant is not None:
            kwargs["state_quant"] = self.state_quant
        return kwargs


class LIF(FiringNeuron):
    """A spiking neuron with a membrane decay ``beta`` (snnTorch's ``LIF`` parent class)."""

    def __init__(
        self,
        beta: Any,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        graded_spikes_factor: Any = 1.0,
        learn_graded_spikes_factor: bool = False,
    ):
        super().__init__(
            threshold=threshold,
            spike_grad=spike_grad,
            surrogate_disable=surrogate_disable,
            init_hidden=init_hidden,
            inhibition=inhibition,
            learn_threshold=learn_threshold,
            reset_mechanism=reset_mechanism,
            state_quant=state_quant,
            output=output,
            graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
        )
        register_value(self, "beta", beta, learn_beta)
