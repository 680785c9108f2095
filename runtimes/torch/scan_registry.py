"""Each fused scan kind as a pair of registered custom operators, for any implementation of it.

:func:`register_leaky`, :func:`register_recurrent` and :func:`register_synaptic` register
``snngraph::<name>`` and ``snngraph::<name>_backward`` around an implementation's forward and
backward (the torch scans in ``scan_ops.py``, the Triton kernels in ``triton/ops.py``), which take
the ops' primitive arguments: resets by name, a surrogate as its name and a list of its parameter
values. Each op is opaque to dynamo (one node, a fake implementation for shapes) and its autograd
formula is the backward op; inside a ``torch.func`` transform the pair runs as an
``autograd.Function`` (:func:`with_autograd`). Each returns the scan function on the config
dataclass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import ScanConfig
from snngraph.runtimes.torch.scan_recurrent import RecurrentScanConfig
from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig

Grad = Tensor | None


def _in_functorch() -> bool:
    return not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is not None


def with_autograd(op: Any, setup: Any, backward: Any) -> Callable[..., Any]:
    """Register ``backward`` (with ``setup``) as ``op``'s autograd formula; return the caller of ``op``, which
    inside a ``torch.func`` transform runs it as an ``autograd.Function`` in the ``setup_context`` style
    (the transforms accept that; the autograd a custom op registers is the old style)."""
    op.register_autograd(backward, setup_context=setup)

    def forward(*args: Any) -> Any:
        return op(*args)

    function = type(f"{op._name}_function", (torch.autograd.Function,), {  # noqa: SLF001 (torch's own field)
        "forward": staticmethod(forward), "setup_context": staticmethod(setup), "backward": staticmethod(backward)})

    def call(*args: Any) -> Any:
        return function.apply(*args) if _in_functorch() else op(*args)

    return call


def backward_call(op: Any, *args: Any) -> Any:
    """Call a backward op; inside a ``torch.func`` transform its Python function itself (the transform
    refuses a custom op without autograd, and the function runs on the transform's tensors), without
    building a graph: the gradients are first order."""
    if not _in_functorch():
        return op(*args)
    with torch.no_grad():  # first-order: the hand-written loops write with out=
        return op._init_fn(*args)  # noqa: SLF001 (torch's own field)


def _encode(surrogate: Surrogate | None) -> tuple[str, list[float]]:
    return ("none", []) if surrogate is None else (surrogate.name, [v for _, v in surrogate.params])


def _grads(grads: Sequence[Grad], needs: Sequence[bool], inputs: Sequence[Tensor | None]) -> list[Tensor]:
    """The gradients an op returns: ``None`` / not needed as empty tensors, none aliasing an input."""
    wrapped = _in_functorch()  # the transform's tensors have no storage; an autograd.Function may alias
    taken = set() if wrapped else {t.untyped_storage().data_ptr() for t in inputs if t is not None and t.numel()}
    out = []
    for g, need, like in zip(grads, needs, inputs, strict=True):
        if not need or g is None:
            out.append((like if like is not None else inputs[0]).new_empty(0))
        else:
            out.append(g.clone() if not wrapped and g.untyped_storage().data_ptr() in taken else g)
    return out


def _fake_grads(needs: Sequence[bool], likes: Sequence[Tensor | None]) -> list[Tensor]:
    first = next(t for t in likes if t is not None)
    return [torch.empty_like(t) if need and t is not None else first.new_empty(0) for need, t in zip(needs, likes,
                                                                                                      strict=True)]


def _untangle(grads: Sequence[Tensor], needs: Sequence[bool]) -> tuple[Grad, ...]:
    return tuple(g if need else None for g, need in zip(grads, needs, strict=True))


def _scratch(requested: bool) -> bool:
    """Whether a scan op may write its state over its input (``ScanConfig.scratch_input``: the input is
    the private result of a synapse), as the eager scans do: under ``torch.compile`` / ``torch.export``,
    not inside a ``torch.func`` transform (whose tensors are the transform's). The op then saves its
    input, holding the membranes, for the backward."""
    return requested and not _in_functorch()


def _may_overwrite_saved() -> bool:
    """Whether a backward may write over a scratch scan's saved membranes: not when the graph is kept
    for another backward. AOTAutograd traces the backward ahead of any call: there its saved tensors are
    donated buffers (``torch._functorch.config.donated_buffer``), and it refuses ``retain_graph`` then."""
    from snngraph.runtimes.torch.scan import graph_kept

    if torch.compiler.is_compiling():
        import torch._functorch.config as aot_config

        return bool(aot_config.donated_buffer) and not graph_kept()
    return not graph_kept()


def _into(mems: Tensor, grad: Tensor) -> None:
    """Make sure ``x``'s gradient is in ``mems``: the scans' adjoint writes it there when it may (not when the
    graph is kept for another backward, with ``torch._functorch.config.donated_buffer`` off)."""
    if grad.untyped_storage().data_ptr() != mems.untyped_storage().data_ptr():
        mems.copy_(grad)


def reset_now(reset: str, reset_delay: bool, spiking: bool) -> bool:
    """Whether a Leaky scan resets in the step of the spike (and then saves the pre-reset membranes)."""
    return spiking and not reset_delay and reset != "none"


def register_leaky(name: str, forward: Callable, backward: Callable, call_backward: Callable = backward_call,
                   in_place: bool = False) -> Callable[..., tuple[Tensor, Tensor]]:
    """The Leaky / IF / LI scan: ``forward`` gives ``(spk, mem, pre-reset membranes or empty)``,
    ``backward`` the gradients of ``(x, mem0, beta, threshold, graded)``, both with a last argument
    ``scratch``. ``in_place``: the implementation honours ``scratch`` (see :func:`_scratch`)."""

    @torch.library.custom_op(f"snngraph::{name}", mutates_args=())
    def op(x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, reset: str,
           reset_delay: bool, surrogate: str, params: list[float], spiking: bool,
           scratch: bool) -> tuple[Tensor, Tensor, Tensor]:
        return forward(x, mem0, beta, threshold, graded, reset, reset_delay, surrogate, params, spiking, scratch)

    @op.register_fake
    def _(x, mem0, beta, threshold, graded, reset, reset_delay, surrogate, params, spiking, scratch):
        spk = torch.empty_like(x) if spiking else x.new_empty(0)
        extra = torch.empty_like(x) if reset_now(reset, reset_delay, spiking) else x.new_empty(0)
        return spk, x.new_empty(0) if scratch else torch.empty_like(x), extra

    @torch.library.custom_op(f"snngraph::{name}_backward", mutates_args=())
    def backward_op(grad_spk: Tensor | None, grad_mem: Tensor | None, mem0: Tensor, beta: Tensor,
                    threshold: Tensor, graded: Tensor, mems: Tensor, extra: Tensor, reset: str, reset_delay: bool,
                    surrogate: str, params: list[float], spiking: bool, needs: list[bool]) -> list[Tensor]:
        grads = backward(grad_spk, grad_mem, mem0, beta, threshold, graded, mems, extra, reset, reset_delay,
                         surrogate, params, spiking, needs, False)
        return _grads(grads, needs, (mems, mem0, beta, threshold, graded))

    @backward_op.register_fake
    def _(grad_spk, grad_mem, mem0, beta, threshold, graded, mems, extra, reset, reset_delay, surrogate, params,
          spiking, needs):
        return _fake_grads(needs, (mems, mem0, beta, threshold, graded))

    @torch.library.custom_op(f"snngraph::{name}_backward_over_mems", mutates_args=("mems",))
    def backward_over_mems(grad_spk: Tensor, grad_mem: Tensor | None, mem0: Tensor, beta: Tensor,
                           threshold: Tensor, graded: Tensor, mems: Tensor, extra: Tensor, reset: str,
                           reset_delay: bool, surrogate: str, params: list[float], spiking: bool,
                           needs: list[bool]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The backward with ``x``'s gradient written over ``mems`` (a scratch scan's, see :func:`_scratch`);
        returns the gradients of ``(mem0, beta, threshold, graded)``."""
        grads = backward(grad_spk, grad_mem, mem0, beta, threshold, graded, mems, extra, reset, reset_delay,
                         surrogate, params, spiking, needs, True)
        _into(mems, grads[0])
        return tuple(_grads(grads[1:], needs[1:], (mem0, beta, threshold, graded)))

    @backward_over_mems.register_fake
    def _(grad_spk, grad_mem, mem0, beta, threshold, graded, mems, extra, reset, reset_delay, surrogate, params,
          spiking, needs):
        return tuple(_fake_grads(needs[1:], (mem0, beta, threshold, graded)))

    def setup(ctx, inputs, output):
        ctx.set_materialize_grads(False)  # an unused output gets None, not AOTAutograd's zeros
        x, mem0, beta, threshold, graded, *ctx.options = inputs
        ctx.scratch = ctx.options.pop()
        ctx.save_for_backward(mem0, beta, threshold, graded, x if ctx.scratch else output[1], output[2])

    def autograd_backward(ctx, grad_spk, grad_mem, grad_extra):
        needs = list(ctx.needs_input_grad[:5])
        reset, reset_delay, _, _, spiking = ctx.options
        if not spiking:  # LI: no spikes
            grad_spk = None
        # the adjoint overwrites a scratch scan's membranes when it may: spikes have a gradient, beta's
        # gradient does not read them, and the reset is delayed (see scan._backward_delayed)
        if (ctx.scratch and needs[0] and not needs[2] and grad_spk is not None
                and not reset_now(reset, reset_delay, spiking) and _may_overwrite_saved()):
            saved = ctx.saved_tensors  # (unpacked once: the op bumps the membranes' version)
            grads = call_backward(backward_over_mems, grad_spk, grad_mem, *saved, *ctx.options, needs)
            return (saved[4], *_untangle(grads, needs[1:]), None, None, None, None, None, None)
        grads = call_backward(backward_op, grad_spk, grad_mem, *ctx.saved_tensors, *ctx.options, needs)
        return (*_untangle(grads, needs), None, None, None, None, None, None)

    run = with_autograd(op, setup, autograd_backward)

    def scan(x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
             cfg: ScanConfig) -> tuple[Tensor, Tensor]:
        surrogate, params = _encode(cfg.surrogate)
        spk, mem, _ = run(x, mem0, beta, threshold, graded, cfg.reset, cfg.reset_delay, surrogate, params,
                          cfg.spiking, in_place and _scratch(cfg.scratch_input))
        return spk, mem

    return scan


def register_recurrent(name: str, forward: Callable, backward: Callable, call_backward: Callable = backward_call,
                       in_place: bool = False) -> Callable[..., tuple[Tensor, Tensor]]:
    """The RLeaky scan: ``forward`` gives ``(spk, mem)``, ``backward`` the gradients of
    ``(x, spk0, mem0, beta, threshold, graded, weight, bias)``, both with a last argument ``scratch``
    (honoured if ``in_place``, see :func:`_scratch`)."""

    @torch.library.custom_op(f"snngraph::{name}", mutates_args=())
    def op(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
           weight: Tensor, bias: Tensor | None, reset: str, surrogate: str, params: list[float],
           all_to_all: bool, scratch: bool) -> tuple[Tensor, Tensor]:
        return forward(x, spk0, mem0, beta, threshold, graded, weight, bias, reset, surrogate, params, all_to_all,
                       scratch)

    @op.register_fake
    def _(x, spk0, mem0, beta, threshold, graded, weight, bias, reset, surrogate, params, all_to_all, scratch):
        return torch.empty_like(x), x.new_empty(0) if scratch else torch.empty_like(x)

    @torch.library.custom_op(f"snngraph::{name}_backward", mutates_args=())
    def backward_op(grad_spk: Tensor | None, grad_mem: Tensor | None, spk0: Tensor, mem0: Tensor,
                    beta: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor, bias: Tensor | None,
                    mems: Tensor, reset: str, surrogate: str, params: list[float], all_to_all: bool,
                    needs: list[bool]) -> list[Tensor]:
        grads = backward(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, bias, mems, reset,
                         surrogate, params, all_to_all, needs, False)
        return _grads(grads, needs, (mems, spk0, mem0, beta, threshold, graded, weight, bias))

    @backward_op.register_fake
    def _(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, bias, mems, reset, surrogate, params,
          all_to_all, needs):
        return _fake_grads(needs, (mems, spk0, mem0, beta, threshold, graded, weight, bias))

    @torch.library.custom_op(f"snngraph::{name}_backward_over_mems", mutates_args=("mems",))
    def backward_over_mems(grad_spk: Tensor | None, grad_mem: Tensor | None, spk0: Tensor, mem0: Tensor,
                           beta: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor, bias: Tensor | None,
                           mems: Tensor, reset: str, surrogate: str, params: list[float], all_to_all: bool,
                           needs: list[bool]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The backward with ``x``'s gradient written over ``mems`` (a scratch scan's, see :func:`_scratch`);
        returns the gradients of ``(spk0, mem0, beta, threshold, graded, weight, bias)``."""
        grads = backward(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, bias, mems, reset,
                         surrogate, params, all_to_all, needs, True)
        _into(mems, grads[0])
        return tuple(_grads(grads[1:], needs[1:], (spk0, mem0, beta, threshold, graded, weight, bias)))

    @backward_over_mems.register_fake
    def _(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, bias, mems, reset, surrogate, params,
          all_to_all, needs):
        return tuple(_fake_grads(needs[1:], (spk0, mem0, beta, threshold, graded, weight, bias)))

    def setup(ctx, inputs, output):
        ctx.set_materialize_grads(False)  # an unused output gets None, not AOTAutograd's zeros
        x, spk0, mem0, beta, threshold, graded, weight, bias, *ctx.options = inputs
        ctx.scratch = ctx.options.pop()
        ctx.has_bias = bias is not None
        ctx.save_for_backward(spk0, mem0, beta, threshold, graded, weight, bias, x if ctx.scratch else output[1])

    def autograd_backward(ctx, grad_spk, grad_mem):
        needs = [*ctx.needs_input_grad[:7], ctx.has_bias and ctx.needs_input_grad[7]]
        if ctx.scratch and needs[0] and _may_overwrite_saved():  # the adjoint goes over the membranes
            saved = ctx.saved_tensors  # (unpacked once: the op bumps the membranes' version)
            grads = call_backward(backward_over_mems, grad_spk, grad_mem, *saved, *ctx.options, needs)
            return (saved[7], *_untangle(grads, needs[1:]), None, None, None, None, None)
        grads = call_backward(backward_op, grad_spk, grad_mem, *ctx.saved_tensors, *ctx.options, needs)
        return (*_untangle(grads, needs), None, None, None, None, None)

    run = with_autograd(op, setup, autograd_backward)

    def scan(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
             weight: Tensor, bias: Tensor | None, cfg: RecurrentScanConfig) -> tuple[Tensor, Tensor]:
        surrogate, params = _encode(cfg.surrogate)
        return run(x, spk0, mem0, beta, threshold, graded, weight, bias, cfg.reset, surrogate, params, cfg.all_to_all,
                   in_place and _scratch(cfg.scratch_input))

    return scan


def register_synaptic(name: str, forward: Callable, backward: Callable, call_backward: Callable = backward_call,
                      in_place: bool = False) -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """The Synaptic scan: ``forward`` gives ``(spk, syn, mem)``, ``backward`` the gradients of
    ``(x, syn0, mem0, alpha, beta, threshold, graded)``, both with a last argument ``scratch``
    (honoured if ``in_place``, see :func:`_scratch`: the currents go over ``x``, ``syn`` comes back empty)."""

    @torch.library.custom_op(f"snngraph::{name}", mutates_args=())
    def op(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor,
           graded: Tensor, reset: str, surrogate: str, params: list[float],
           scratch: bool) -> tuple[Tensor, Tensor, Tensor]:
        return forward(x, syn0, mem0, alpha, beta, threshold, graded, reset, surrogate, params, scratch)

    @op.register_fake
    def _(x, syn0, mem0, alpha, beta, threshold, graded, reset, surrogate, params, scratch):
        return torch.empty_like(x), x.new_empty(0) if scratch else torch.empty_like(x), torch.empty_like(x)

    @torch.library.custom_op(f"snngraph::{name}_backward", mutates_args=())
    def backward_op(grad_spk: Tensor | None, grad_syn: Tensor | None, grad_mem: Tensor | None, syn0: Tensor,
                    mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, syns: Tensor,
                    mems: Tensor, reset: str, surrogate: str, params: list[float],
                    needs: list[bool]) -> list[Tensor]:
        grads = backward(grad_spk, grad_syn, grad_mem, syn0, mem0, alpha, beta, threshold, graded, syns, mems,
                         reset, surrogate, params, needs, False)
        return _grads(grads, needs, (mems, syn0, mem0, alpha, beta, threshold, graded))

    @backward_op.register_fake
    def _(grad_spk, grad_syn, grad_mem, syn0, mem0, alpha, beta, threshold, graded, syns, mems, reset, surrogate,
          params, needs):
        return _fake_grads(needs, (mems, syn0, mem0, alpha, beta, threshold, graded))

    @torch.library.custom_op(f"snngraph::{name}_backward_over_mems", mutates_args=("mems",))
    def backward_over_mems(grad_spk: Tensor, grad_syn: Tensor | None, grad_mem: Tensor | None, syn0: Tensor,
                           mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                           syns: Tensor, mems: Tensor, reset: str, surrogate: str, params: list[float],
                           needs: list[bool]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The backward with its adjoint written over a scratch scan's ``mems`` (see :func:`_scratch`)."""
        grads = backward(grad_spk, grad_syn, grad_mem, syn0, mem0, alpha, beta, threshold, graded, syns, mems,
                         reset, surrogate, params, needs, True)
        return tuple(_grads(grads, needs, (mems, syn0, mem0, alpha, beta, threshold, graded)))

    @backward_over_mems.register_fake
    def _(grad_spk, grad_syn, grad_mem, syn0, mem0, alpha, beta, threshold, graded, syns, mems, reset, surrogate,
          params, needs):
        return tuple(_fake_grads(needs, (mems, syn0, mem0, alpha, beta, threshold, graded)))

    def setup(ctx, inputs, output):
        ctx.set_materialize_grads(False)  # an unused output gets None, not AOTAutograd's zeros
        x, syn0, mem0, alpha, beta, threshold, graded, *ctx.options = inputs
        ctx.scratch = ctx.options.pop()
        ctx.save_for_backward(syn0, mem0, alpha, beta, threshold, graded, x if ctx.scratch else output[1], output[2])

    def autograd_backward(ctx, grad_spk, grad_syn, grad_mem):
        needs = list(ctx.needs_input_grad[:7])
        # a scratch scan's membranes hold the adjoint when beta's gradient does not read them
        over = ctx.scratch and grad_spk is not None and not needs[4] and _may_overwrite_saved()
        grads = call_backward(backward_over_mems if over else backward_op, grad_spk, grad_syn, grad_mem,
                              *ctx.saved_tensors, *ctx.options, needs)
        return (*_untangle(grads, needs), None, None, None, None)

    run = with_autograd(op, setup, autograd_backward)

    def scan(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor,
             graded: Tensor, cfg: SynapticScanConfig) -> tuple[Tensor, Tensor, Tensor]:
        surrogate, params = _encode(cfg.surrogate)
        return run(x, syn0, mem0, alpha, beta, threshold, graded, cfg.reset, surrogate, params,
                   in_place and _scratch(cfg.scratch_input))

    return scan
