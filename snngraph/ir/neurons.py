"""Neuron node classes by name, for code that matches on them (``isinstance(node, N.Leaky)``).

Every class here is generated from its model's one declaration in :mod:`snngraph.models` (see
:mod:`snngraph.ir.model` and :mod:`snngraph.ir.model_node`); nothing about a model is stated here.
"""

from __future__ import annotations

import snngraph.models  # noqa: F401  (registers the built-in models)
from snngraph.ir.model import MODELS, RESET
from snngraph.ir.model_node import ModelNeuron, current_type, state_arity
from snngraph.ir.node import NODE_KINDS

Neuron = ModelNeuron
Leaky = NODE_KINDS["leaky"]
Synaptic = NODE_KINDS["synaptic"]
Alpha = NODE_KINDS["alpha"]
Lapicque = NODE_KINDS["lapicque"]
RLeaky = NODE_KINDS["rleaky"]
RSynaptic = NODE_KINDS["rsynaptic"]
IntegrateFire = NODE_KINDS["integrate_fire"]
LeakyIntegrator = NODE_KINDS["leaky_integrator"]
AdaptiveLeaky = NODE_KINDS["adaptive_leaky"]

RESETS = RESET.choices
NEURON_OPS = tuple(name for name, model in MODELS.items() if model.builtin)
"""The built-in neuron models' op names."""

__all__ = ["NEURON_OPS", "RESETS", "AdaptiveLeaky", "Alpha", "IntegrateFire", "Lapicque", "Leaky",
           "LeakyIntegrator", "Neuron", "RLeaky", "RSynaptic", "Synaptic", "current_type", "state_arity"]
