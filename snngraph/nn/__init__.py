"""Per-step spiking neuron modules: the "torch.nn of spiking neurons", snnTorch 1.0.0 compatible.

``Leaky``, ``Synaptic``, ``Alpha``, ``Lapicque``, ``RLeaky`` and ``RSynaptic`` take snnTorch's
constructor arguments and calling convention (``spk, mem = lif(cur, mem)``); ``IntegrateFire``
(``IF``), ``LeakyIntegrator`` (``LI``) and ``AdaptiveLeaky`` (``ALIF``) complete the set. Every
module computes through the pure kernels of ``snngraph.runtimes.torch.kernels`` and keeps its
hidden state on the instance only. ``BatchNormTT1d`` / ``BatchNormTT2d`` (per-time-step batch
norm) and ``GradedSpikes`` (learnable spike magnitudes) are snnTorch's layers; ``DeltaLeaky`` its
delta neuron. ``StateLeaky``, ``LinearLeaky``, ``LeakyParallel`` and ``AssociativeLeaky`` are its
whole-sequence neurons: they take ``(T, B, ...)`` at once.
"""

from snngraph.nn.associative_leaky import AssociativeLeaky
from snngraph.nn.base import LIF, FiringNeuron, SpikingNeuron
from snngraph.nn.bntt import BatchNormTT1d, BatchNormTT2d
from snngraph.nn.delta_leaky import DeltaLeaky
from snngraph.nn.graded_spikes import GradedSpikes
from snngraph.nn.lapicque import Lapicque
from snngraph.nn.leaky import ALIF, IF, LI, AdaptiveLeaky, IntegrateFire, Leaky, LeakyIntegrator
from snngraph.nn.leaky_parallel import LeakyParallel
from snngraph.nn.lstm import SLSTM, SConv2dLSTM
from snngraph.nn.recurrent import RecurrentOneToOne, RLeaky, RSynaptic
from snngraph.nn.state_leaky import LinearLeaky, StateLeaky
from snngraph.nn.synaptic import Alpha, Synaptic

__all__ = [
    "ALIF",
    "IF",
    "LI",
    "LIF",
    "AdaptiveLeaky",
    "AssociativeLeaky",
    "Alpha",
    "BatchNormTT1d",
    "BatchNormTT2d",
    "DeltaLeaky",
    "FiringNeuron",
    "GradedSpikes",
    "IntegrateFire",
    "Lapicque",
    "Leaky",
    "LeakyIntegrator",
    "LeakyParallel",
    "LinearLeaky",
    "RLeaky",
    "RSynaptic",
    "RecurrentOneToOne",
    "SConv2dLSTM",
    "SLSTM",
    "SpikingNeuron",
    "StateLeaky",
    "Synaptic",
]
