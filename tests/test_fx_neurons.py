"""sg.trace of every supported neuron (snnTorch 1.0.0 and sg.nn), init_hidden and explicit-state styles."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as snn_surrogate
from test_fx_helpers import B, check_equivalent, inputs, run_explicit, run_hidden
from torch import nn

import snngraph as sg


def _per_neuron(*values):
    return torch.tensor(values)


# name -> (factory(lib, **style kwargs), number of state args, recurrent)
NEURONS = {
    "leaky": lambda lib, **kw: lib.Leaky(beta=0.9, **kw),
    "leaky_learn_zero": lambda lib, **kw: lib.Leaky(beta=_per_neuron(0.5, 0.7, 0.9, 0.95, 1.0), learn_beta=True,
                                                    threshold=0.7, learn_threshold=True, reset_mechanism="zero", **kw),
    "leaky_none_now": lambda lib, **kw: lib.Leaky(beta=0.8, reset_mechanism="none", reset_delay=False, **kw),
    "leaky_graded": lambda lib, **kw: lib.Leaky(beta=0.8, reset_delay=False, graded_spikes_factor=0.5,
                                                learn_graded_spikes_factor=True, **kw),
    "leaky_fast_sigmoid": lambda lib, **kw: lib.Leaky(beta=0.8, spike_grad=snn_surrogate.fast_sigmoid(slope=10),
                                                      **kw),
    "synaptic": lambda lib, **kw: lib.Synaptic(alpha=0.7, beta=0.9, **kw),
    "synaptic_learn_zero": lambda lib, **kw: lib.Synaptic(alpha=0.6, beta=0.8, learn_alpha=True, learn_beta=True,
                                                          reset_mechanism="zero", **kw),
    "alpha": lambda lib, **kw: lib.Alpha(alpha=0.9, beta=0.8, **kw),
    "lapicque_beta": lambda lib, **kw: lib.Lapicque(beta=0.9, **kw),
    "lapicque_rc": lambda lib, **kw: lib.Lapicque(R=5.0, C=0.5, time_step=0.5, **kw),
    "rleaky_linear": lambda lib, **kw: lib.RLeaky(beta=0.9, linear_features=5, **kw),
    "rleaky_v": lambda lib, **kw: lib.RLeaky(beta=0.9, all_to_all=False, V=0.5, **kw),
    "rleaky_frozen_zero": lambda lib, **kw: lib.RLeaky(beta=0.9, linear_features=5, learn_recurrent=False,
                                                       reset_mechanism="zero", **kw),
    "rsynaptic_linear": lambda lib, **kw: lib.RSynaptic(alpha=0.8, beta=0.9, linear_features=5, **kw),
    "rsynaptic_v": lambda lib, **kw: lib.RSynaptic(alpha=0.8, beta=0.9, all_to_all=False,
                                                   V=_per_neuron(0.1, 0.2, 0.3, 0.4, 0.5), **kw),
}
SG_ONLY = {
    "integrate_fire": lambda lib, **kw: lib.IntegrateFire(threshold=1.5, **kw),
    "leaky_integrator": lambda lib, **kw: lib.LeakyIntegrator(beta=0.8, **kw),
    "adaptive_leaky": lambda lib, **kw: lib.AdaptiveLeaky(beta=0.9, rho=0.8, adaptation=0.5, **kw),
}


def _state_count(neuron: nn.Module) -> int:
    import inspect

    return len(inspect.signature(neuron.forward).parameters) - 1


class Explicit1(nn.Module):
    def __init__(self, neuron):
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self.lif = neuron

    def forward(self, x, s0):
        return self.lif(self.fc(x), s0)


class Explicit2(Explicit1):
    def forward(self, x, s0, s1):
        return self.lif(self.fc(x), s0, s1)


class Explicit3(Explicit1):
    def forward(self, x, s0, s1, s2):
        return self.lif(self.fc(x), s0, s1, s2)


EXPLICIT = {1: Explicit1, 2: Explicit2, 3: Explicit3}


def _hidden_case(factory, lib, output):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), factory(lib, init_hidden=True, output=output))
    xs = inputs(4)
    graph = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    assert graph.nodes["_1"].family == "neuron"
    return graph


def _explicit_case(factory, lib, keep):
    torch.manual_seed(0)
    neuron = factory(lib)
    n = _state_count(neuron)
    model = EXPLICIT[n](neuron)
    xs = inputs(4)
    zeros = [torch.zeros(B, 5) for _ in range(n)]
    recurrent = "spk" in __import__("inspect").signature(neuron.forward).parameters
    carry = [(i, i) for i in range(n)] if recurrent else [(i, i + 1) for i in range(n)]
    returned = n if recurrent else n + 1
    outputs = list(range(returned)) if keep else [0]
    graph = check_equivalent(model, (xs[0], *zeros), xs, lambda: run_explicit(model, xs, zeros, outputs, carry),
                             keep_state_outputs=keep)
    assert list(graph.inputs) == ["x"]
    return graph


@pytest.mark.parametrize("case", sorted(NEURONS))
@pytest.mark.parametrize("output", [False, True])
def test_snntorch_neuron_init_hidden(case, output):
    _hidden_case(NEURONS[case], snn, output)


@pytest.mark.parametrize("case", sorted(NEURONS))
@pytest.mark.parametrize("keep", [False, True])
def test_snntorch_neuron_explicit_state(case, keep):
    _explicit_case(NEURONS[case], snn, keep)


@pytest.mark.parametrize("case", sorted(NEURONS | SG_ONLY))
def test_sg_nn_neuron_init_hidden(case):
    _hidden_case((NEURONS | SG_ONLY)[case], sg.nn, output=True)


@pytest.mark.parametrize("case", sorted(NEURONS | SG_ONLY))
def test_sg_nn_neuron_explicit_state(case):
    _explicit_case((NEURONS | SG_ONLY)[case], sg.nn, keep=True)


def test_hyper_parameters_carried_over():
    torch.manual_seed(0)
    lif = snn.Synaptic(alpha=0.7, beta=torch.tensor([0.5, 0.6, 0.7]), learn_beta=True, threshold=0.5,
                       reset_mechanism="zero", reset_delay=False, init_hidden=True)
    g = sg.trace(nn.Sequential(nn.Linear(2, 3), lif), torch.zeros(1, 2))
    node = g.nodes["_1"]
    assert node.op == "synaptic" and node.reset_mechanism == "zero" and node.reset_delay is False
    assert node.beta.learnable and node.beta.shape == (3,) and not node.alpha.learnable
    assert node.threshold.item() == 0.5 and node.alpha.value.item() == pytest.approx(0.7)
    assert node.surrogate == sg.surrogate.atan(2.0)


def test_rleaky_recurrent_weights_carried_over():
    torch.manual_seed(0)
    lif = snn.RLeaky(beta=0.9, linear_features=3, init_hidden=True)
    g = sg.trace(nn.Sequential(nn.Linear(2, 3), lif), torch.zeros(1, 2))
    node = g.nodes["_1"]
    assert (node.recurrent_weight.value == lif.recurrent.weight.detach().numpy()).all()
    assert (node.recurrent_bias.value == lif.recurrent.bias.detach().numpy()).all()
    assert "1.recurrent.weight" in dict(sg.compile(g).named_parameters())


@pytest.mark.parametrize("factory, expected", [
    (lambda: snn_surrogate.atan(alpha=3.0), sg.surrogate.atan(3.0)),
    (lambda: snn_surrogate.fast_sigmoid(slope=10), sg.surrogate.fast_sigmoid(10)),
    (lambda: snn_surrogate.sigmoid(), sg.surrogate.sigmoid()),
    (lambda: snn_surrogate.triangular(), sg.surrogate.triangular()),
    (lambda: snn_surrogate.heaviside(), sg.surrogate.heaviside()),
    (lambda: snn_surrogate.straight_through_estimator(), sg.surrogate.straight_through_estimator()),
    (lambda: snn_surrogate.spike_rate_escape(beta=2, slope=5), sg.surrogate.spike_rate_escape(2, 5)),
    (lambda: snn_surrogate.SSO(mean=0.1, variance=0.3), sg.surrogate.SSO(0.1, 0.3)),
    (lambda: snn_surrogate.SFS(slope=5, B=0.5), sg.surrogate.SFS(5, 0.5)),
    (lambda: sg.surrogate.fast_sigmoid(3), sg.surrogate.fast_sigmoid(3)),
])
def test_surrogates_mapped(factory, expected):
    lif = snn.Leaky(beta=0.9, spike_grad=factory(), init_hidden=True)
    g = sg.trace(nn.Sequential(nn.Linear(2, 3), lif), torch.zeros(1, 2))
    assert g.nodes["_1"].surrogate == expected


def test_custom_and_callable_surrogates():
    def grad(input_, grad_input, spikes):
        return grad_input / (3 * input_.abs() + 1) ** 2

    def spike(u):
        return (u > 0).float()

    custom = snn.Leaky(beta=0.9, spike_grad=snn_surrogate.custom_surrogate(grad), init_hidden=True)
    g = sg.trace(nn.Sequential(nn.Linear(2, 3), custom), torch.zeros(1, 2))
    assert g.nodes["_1"].surrogate.name == "custom" and g.nodes["_1"].surrogate.fn is grad
    plain = snn.Leaky(beta=0.9, spike_grad=spike, init_hidden=True)
    g = sg.trace(nn.Sequential(nn.Linear(2, 3), plain), torch.zeros(1, 2))
    assert g.nodes["_1"].surrogate.name == "callable" and g.nodes["_1"].surrogate.fn is spike


def test_custom_surrogate_gradients_match():
    def grad(input_, grad_input, spikes):
        return grad_input / (3 * input_.abs() + 1) ** 2

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), snn.Leaky(beta=0.9, spike_grad=snn_surrogate.custom_surrogate(grad),
                                                     init_hidden=True))
    xs = inputs(4)
    check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))


def test_beta_above_one_is_clamped_like_snntorch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), snn.Leaky(beta=torch.tensor(1.2), init_hidden=True))
    xs = inputs(4)
    g = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    assert g.nodes["_1"].beta.item() == 1.0


@pytest.mark.parametrize("kw", [dict(spike_grad=lambda u: (u > 0).float()), dict(surrogate_disable=True)])
def test_callable_spike_functions_run_eagerly(kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), snn.Leaky(beta=0.9, init_hidden=True, output=True, **kw))
    xs = inputs(4)
    g = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    assert g.nodes["_1"].surrogate.name == "callable"
