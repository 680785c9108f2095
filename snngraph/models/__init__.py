"""The built-in neuron models, each declared once (see :mod:`snngraph.ir.model`).

Importing this package registers them; a new model is one file here plus its tests.
"""

from snngraph.models import (
    adaptive_leaky,
    alpha,
    associative_leaky,
    delta_leaky,
    lapicque,
    leaky,
    leaky_integrator,
    leaky_parallel,
    lstm,
    nir_lif,
    norse_li,
    norse_lif,
    recurrent,
    spikingjelly,
    state_leaky,
    synaptic,
)

__all__ = ["adaptive_leaky", "alpha", "associative_leaky", "delta_leaky", "lapicque", "leaky", "leaky_integrator",
           "leaky_parallel", "lstm", "nir_lif", "norse_li", "norse_lif", "recurrent", "spikingjelly", "state_leaky",
           "synaptic"]
