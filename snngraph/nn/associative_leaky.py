r"""``AssociativeLeaky``: snnTorch 1.0.0's associative-memory spiking neuron over a whole sequence.

A matrix state :math:`S_t \in \mathbb{R}^{d \times n}` per sample is written with outer products
and decays per key column; its spikes are read out through a projected query. It computes with the
model's fused scan (``runtimes/torch/scan_associative.py``: bit-identical to the kernel derived from the
``associative_leaky`` declaration, :mod:`snngraph.models.associative_leaky`, which a plain-callable or
SSO spike function keeps).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from snngraph.ir.errors import GraphError
from snngraph.ir.model import get_model
from snngraph.ir.surrogate import Surrogate
from snngraph.nn.base import FiringNeuron
from snngraph.runtimes.torch.capabilities import DETERMINISTIC
from snngraph.runtimes.torch.cell import model_maps, projected
from snngraph.runtimes.torch.kernels import kernel_for
from snngraph.runtimes.torch.scan_associative import associative_scan
from snngraph.runtimes.torch.sequence import step_over_time

__all__ = ["AssociativeLeaky"]


class AssociativeLeaky(FiringNeuron):
    r"""Associative leaky neuron (snnTorch ``AssociativeLeaky``).

    .. math::
        v_t = W_v x_t + b_v, \quad k_t &= W_k x_t + b_k, \quad \alpha_t = \sigma(W_\alpha x_t + b_\alpha) \\
        S_t &= S_{t-1} \operatorname{diag}(\alpha_t) + v_t k_t^\top \\
        Z_t &= H(S_t - \theta), \qquad y_t = \operatorname{vec}(Z_t\,Q_t) \ \text{or}\ \operatorname{vec}(Z_t)

    with :math:`Q_t \in \mathbb{R}^{n \times d}` the query ``to_q(x_t)`` (``use_q_projection``),
    :math:`d` = ``d_value``, :math:`n` = ``d_key``, threshold :math:`\theta = 1` and the ``atan``
    surrogate (snnTorch's ``SpikingNeuron`` defaults). ``forward(x)`` takes ``(T, B, in_dim)`` and
    returns ``(T, B, d*d)`` (``use_q_projection``) or ``(T, B, d*n)``.

    Differs from snnTorch 1.0.0: snnTorch evaluates :math:`S_t` in closed form as
    :math:`P_t \sum_{r \le t} v_r k_r^\top / (P_r + 10^{-8})` with :math:`P_t = \prod_{s \le t} \alpha_s`;
    once :math:`P_t` falls towards :math:`10^{-8}` (about 27 steps at :math:`\alpha = 0.5`) the
    :math:`10^{-8}` dominates and the recent writes fade out of the state. snngraph computes the
    recurrence itself, exactly what that closed form means (equal to it to about
    :math:`10^{-8}/P_t` relative while :math:`P_t \gg 10^{-8}`). Its spikes keep the input's dtype
    (snnTorch's default surrogate makes them float32, and its readout ``bmm`` then fails in float64).
    ``sg.trace`` maps it (and snnTorch's) onto an ``associative_leaky`` node.

    Example::

        neuron = sg.nn.AssociativeLeaky(in_dim=16, d_value=4, d_key=4, num_spiking_neurons=16)
        y = neuron(torch.randn(20, 8, 16))          # (20, 8, 16)
    """

    def __init__(self, in_dim: int, d_value: int, d_key: int, num_spiking_neurons: int | None,
                 use_q_projection: bool = True):
        if in_dim <= 0:
            raise GraphError("in_dim must be a positive integer")
        if d_value <= 0 or d_key <= 0:
            raise GraphError("d_value and d_key must be positive integers")
        if num_spiking_neurons is not None and num_spiking_neurons != d_value * d_key:
            raise GraphError(f"num_spiking_neurons={num_spiking_neurons} must equal d_value * d_key="
                             f"{d_value * d_key}")
        super().__init__(output=True)
        self.d_value, self.d_key = d_value, d_key
        self.num_spiking_neurons = num_spiking_neurons
        self.use_q_projection = use_q_projection
        self.to_v = nn.Linear(in_dim, d_value)
        self.to_k = nn.Linear(in_dim, d_key)
        self.to_alpha = nn.Linear(in_dim, d_key)
        self.to_q = nn.Linear(in_dim, d_value * d_key) if use_q_projection else None
        self.eps = 1e-8  # snnTorch's attribute; the recurrence needs no guard

    @classmethod
    def from_num_spiking_neurons(cls, in_dim: int, num_spiking_neurons: int,
                                 use_q_projection: bool = True) -> AssociativeLeaky:
        """``d_value = d_key = sqrt(num_spiking_neurons)`` (a perfect square)."""
        if num_spiking_neurons <= 0:
            raise GraphError("num_spiking_neurons must be positive")
        m = math.isqrt(num_spiking_neurons)
        if m * m != num_spiking_neurons:
            raise GraphError(f"num_spiking_neurons={num_spiking_neurons} must be a perfect square to set "
                             "d = n = sqrt(N)")
        return cls(in_dim=in_dim, d_value=m, d_key=m, num_spiking_neurons=num_spiking_neurons,
                   use_q_projection=use_q_projection)

    state_names = ("S",)

    def _kernel_kwargs(self) -> dict:
        """The derived kernel's keywords: the projections, the dims and the firing hyper-parameters."""
        model = get_model("associative_leaky")
        tensors = {f"{h}_{part}": getattr(getattr(self, h), part) for h in model.heads.sizes
                   if getattr(self, h) is not None for part in ("weight", "bias")}
        return {**model_maps(model, tensors), "d_value": self.d_value, "d_key": self.d_key,
                "threshold": self.threshold, "graded_spikes_factor": self.graded_spikes_factor,
                "spike_grad": self.spike_grad, "use_q_projection": self.use_q_projection}

    def _step(self, input_: Tensor, S: Tensor) -> tuple[Tensor, ...]:
        """One step: ``(y, S)`` from ``x_t`` ``(B, in_dim)`` and ``S`` ``(B, d, n)``."""
        return kernel_for("associative_leaky").step(input_, S, **self._kernel_kwargs())

    def forward(self, x: Tensor) -> Tensor:
        """The readout ``(T, B, d*d)`` (or ``(T, B, d*n)``) of the sequence ``x`` ``(T, B, in_dim)``."""
        if x.dim() != 3:
            raise GraphError(f"AssociativeLeaky: expects a (T, B, in_dim) sequence, got shape {tuple(x.shape)}")
        S = x.new_zeros(x.shape[1], self.d_value, self.d_key)
        kwargs = self._kernel_kwargs()
        spike = kwargs["spike_grad"]
        if isinstance(spike, Surrogate) and spike.name in DETERMINISTIC:  # the fused scan (same values)
            z, projected_kwargs = projected(x, kwargs)
            return associative_scan(z, S, projected_kwargs)[0]
        # a plain callable (perhaps not element-wise) or SSO (noise drawn per step): the derived step loop
        return step_over_time(get_model("associative_leaky"), x, (S,), kwargs)["spk"]
