"""Misuse snnTorch 1.0.0 reports as ``TypeError`` raises ``GraphTypeError`` (a GraphError and a TypeError)
in every ``sg.nn`` neuron; snnTorch is checked to raise ``TypeError`` for the same calls."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch

import snngraph as sg
from snngraph.ir.errors import GraphTypeError

# class name -> (constructor keywords, number of state arguments); snnTorch has the first six
NEURONS = {
    "Leaky": ({"beta": 0.9}, 1),
    "Synaptic": ({"alpha": 0.8, "beta": 0.9}, 2),
    "Alpha": ({"alpha": 0.9, "beta": 0.8}, 3),
    "Lapicque": ({"beta": 0.9}, 1),
    "RLeaky": ({"beta": 0.9, "linear_features": 4}, 2),
    "RSynaptic": ({"alpha": 0.8, "beta": 0.9, "linear_features": 4}, 3),
    "IntegrateFire": ({}, 1),
    "LeakyIntegrator": ({"beta": 0.9}, 1),
    "AdaptiveLeaky": ({"beta": 0.9}, 2),
    "DeltaLeaky": ({"beta": 0.9}, 1),
}
SNNTORCH = ("Leaky", "Synaptic", "Alpha", "Lapicque", "RLeaky", "RSynaptic")
X = torch.rand(2, 4)


def _state(name: str, n: int) -> list:
    if name == "DeltaLeaky":
        return [(torch.zeros(2, 4), torch.zeros(2, 4))]
    return [torch.zeros(2, 4) for _ in range(n)]


def _raises_graph_type_error(call) -> str:
    with pytest.raises(GraphTypeError) as info:
        call()
    assert isinstance(info.value, sg.GraphError) and isinstance(info.value, TypeError)
    return str(info.value)


@pytest.fixture(autouse=True)
def _clean_snntorch():
    yield
    snn.SpikingNeuron.instances.clear()


@pytest.mark.parametrize("name", sorted(NEURONS))
def test_state_passed_to_an_init_hidden_neuron(name):
    kw, n = NEURONS[name]
    ours = getattr(sg.nn, name)(init_hidden=True, **kw)
    message = _raises_graph_type_error(lambda: ours(X, *_state(name, n)))
    assert name in message and "init_hidden" in message
    if name in SNNTORCH:
        theirs = getattr(snn, name)(init_hidden=True, **kw)
        with pytest.raises(TypeError):
            theirs(X, *_state(name, n))


@pytest.mark.parametrize("name", sorted(NEURONS))
def test_wrong_number_of_state_arguments_and_unknown_keywords(name):
    kw, n = NEURONS[name]
    ours = getattr(sg.nn, name)(**kw)
    extra = [*_state(name, n), torch.zeros(2, 4)]
    assert "positional" in _raises_graph_type_error(lambda: ours(X, *extra))
    assert "nope" in _raises_graph_type_error(lambda: ours(X, nope=1))
    assert "positional" in _raises_graph_type_error(lambda: ours())
    if name in SNNTORCH:
        theirs = getattr(snn, name)(**kw)
        with pytest.raises(TypeError):
            theirs(X, *extra)


@pytest.mark.parametrize("name", sorted(NEURONS))
def test_non_tensor_input_and_state(name):
    kw, n = NEURONS[name]
    ours = getattr(sg.nn, name)(**kw)
    assert "input_ must be a torch.Tensor" in _raises_graph_type_error(lambda: ours([0.0, 1.0]))
    bad = [(1.0, 2.0)] if name == "DeltaLeaky" else [1.0] * n
    assert "must be a torch.Tensor" in _raises_graph_type_error(lambda: ours(X, *bad))


@pytest.mark.parametrize("name", ["RLeaky", "RSynaptic"])
@pytest.mark.parametrize("kw", [{}, {"linear_features": 4, "kernel_size": 3},
                                {"all_to_all": False, "linear_features": 4}, {"conv2d_channels": 2}])
def test_recurrence_misconfiguration(name, kw):
    decays = {"beta": 0.9} if name == "RLeaky" else {"alpha": 0.8, "beta": 0.9}
    _raises_graph_type_error(lambda: getattr(sg.nn, name)(**decays, **kw))
    with pytest.raises(TypeError):
        getattr(snn, name)(**decays, **kw)


def test_bad_option_types():
    _raises_graph_type_error(lambda: sg.nn.Leaky(beta=0.9, spike_grad="atan"))
    _raises_graph_type_error(lambda: sg.nn.Leaky(beta=0.9, state_quant=4))
    _raises_graph_type_error(lambda: sg.nn.Synaptic(alpha=0.8, beta=0.9, inhibition=1))


def test_type_errors_inside_the_step_are_not_relabelled():
    def broken(u):
        raise TypeError("inside the surrogate")

    lif = sg.nn.Leaky(beta=0.9, spike_grad=broken)
    with pytest.raises(TypeError, match="inside the surrogate") as info:
        lif(X)
    assert not isinstance(info.value, sg.GraphError)
