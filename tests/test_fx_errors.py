"""sg.trace rejects what the IR cannot express with a GraphError naming the op and the model's line."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg


class Wrap(nn.Module):
    """A per-step model whose forward is the given function of (self, x)."""

    def __init__(self, body, neuron=None):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.lif = neuron if neuron is not None else snn.Leaky(beta=0.9, init_hidden=True)
        self.body = body

    def forward(self, x):
        return self.body(self, x)


def _trace_error(body, neuron=None, example=None) -> str:
    with pytest.raises(sg.GraphError) as info:
        sg.trace(Wrap(body, neuron), torch.zeros(2, 6) if example is None else example)
    return str(info.value)


def test_unsupported_function_names_op_and_line():
    message = _trace_error(lambda self, x: self.lif(torch.exp(self.fc(x))))
    assert "torch.exp" in message and "unsupported operation" in message
    assert "test_fx_errors.py:" in message and "torch.exp(self.fc(x))" in message


def test_unsupported_method_names_op_and_line():
    message = _trace_error(lambda self, x: self.lif(self.fc(x).detach()))
    assert "Tensor.detach" in message and "test_fx_errors.py:" in message


def test_unsupported_module_is_named():
    model = nn.Sequential(nn.Linear(6, 6), nn.Softplus(), snn.Leaky(beta=0.9, init_hidden=True))
    with pytest.raises(sg.GraphError, match=r"module '1' \(Softplus\).*unsupported module torch\.nn.*Softplus"):
        sg.trace(model, torch.zeros(2, 6))


@pytest.mark.parametrize("body, pattern", [
    (lambda self, x: self.lif(self.fc(x) + 1.0), "adding a constant"),
    (lambda self, x: self.lif(self.fc(x) * self.fc(x)), "called more than once"),
    (lambda self, x: self.lif(self.fc(x)[:, :3]), "indexing or slicing"),
    (lambda self, x: self.lif(torch.cat([self.fc(x), x], dim=0)), "batch dim"),
    (lambda self, x: self.lif(self.fc(x).view(x.size(0), 2, 4)), "changes the size per sample"),
    (lambda self, x: self.lif(self.fc(x).view(-1)), "first dim must stay the batch"),
])
def test_inexpressible_operations(body, pattern):
    assert pattern in _trace_error(body)


def test_control_flow_on_values_names_line():
    def body(self, x):
        h = self.fc(x)
        if h.sum() > 0:
            h = h * 2
        return self.lif(h)

    message = _trace_error(body)
    assert "cannot trace" in message and "test_fx_errors.py:" in message and "h.sum() > 0" in message


def test_unsupported_neuron_options():
    with pytest.warns(UserWarning, match="Inhibition"):  # snnTorch's DeltaLeaky ignores it; tracing refuses it
        inhibited = snn.DeltaLeaky(beta=0.9, init_hidden=True, inhibition=True)
    assert "inhibition" in _trace_error(lambda self, x: self.lif(self.fc(x))[0], inhibited)
    snn.SpikingNeuron.instances.remove(inhibited)  # (its mem is None: snnTorch's utils.reset would fail on it)
    quant = snn.Leaky(beta=0.9, init_hidden=True, state_quant=lambda m: m.round())  # a callable without levels
    assert "state_quant" in _trace_error(lambda self, x: self.lif(self.fc(x)), quant)
    conv = snn.RLeaky(beta=0.9, conv2d_channels=2, kernel_size=3, init_hidden=True)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), conv)
    with pytest.raises(sg.GraphError, match=r"module '1'.*Conv2d recurrence"):
        sg.trace(model, torch.zeros(2, 1, 5, 5))


class _OwnSpikingNeuron(snn.SpikingNeuron):
    """A neuron subclassing snnTorch's base directly: no known class in its MRO."""

    def forward(self, x):
        return self.fire(x)


def test_unsupported_snntorch_neuron_is_named():
    model = nn.Sequential(nn.Linear(6, 6), _OwnSpikingNeuron())
    with pytest.raises(sg.GraphError, match="_OwnSpikingNeuron is not supported"):
        sg.trace(model, torch.zeros(2, 6))


def test_constant_state_would_restart_every_step():
    def body(self, x):
        mem = self.lif.init_leaky()
        spk, mem = self.lif(self.fc(x), mem)
        return spk

    assert "restart at every step" in _trace_error(body, snn.Leaky(beta=0.9))


def test_sg_nn_neuron_without_state_or_init_hidden():
    message = _trace_error(lambda self, x: self.lif(self.fc(x))[0], sg.nn.Leaky(beta=0.9))
    assert "restarts from zero at every step" in message


def test_state_argument_also_used_as_data():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = snn.Leaky(beta=0.9)

        def forward(self, x, mem):
            spk, mem = self.lif(x + mem, mem)
            return spk, mem

    with pytest.raises(sg.GraphError, match="argument 'mem' is the state of 'lif' and is also used as data"):
        sg.trace(Net(), (torch.zeros(2, 3), torch.zeros(2, 3)))


def test_bad_example_inputs_and_names():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x, y):
            return self.lif(x + y)

    with pytest.raises(sg.GraphError, match="argument 'y'.*no tensor"):
        sg.trace(TwoInputs(), torch.zeros(2, 3))
    with pytest.raises(sg.GraphError, match="batch size"):
        sg.trace(TwoInputs(), (torch.zeros(2, 3), torch.zeros(4, 3)))
    with pytest.raises(sg.GraphError, match="output_names"):
        sg.trace(TwoInputs(), (torch.zeros(2, 3), torch.zeros(2, 3)), output_names=["a", "b"])
    with pytest.raises(sg.GraphError, match="torch.nn.Module"):
        sg.trace(lambda x: x, torch.zeros(2, 3))
    g = sg.trace(TwoInputs(), (torch.zeros(2, 3), torch.zeros(2, 3)), output_names=["spikes"])
    assert list(g.inputs) == ["x", "y"] and list(g.outputs) == ["spikes"]


def test_tracing_leaves_the_model_unchanged():
    def body(self, x):
        mem = self.lif.init_leaky()
        return self.lif(self.fc(x), mem)[0]

    model = Wrap(body, snn.Leaky(beta=0.9))
    before = set(vars(model))
    with pytest.raises(sg.GraphError):
        sg.trace(model, torch.zeros(2, 6))
    assert set(vars(model)) == before


@pytest.mark.parametrize("layer, shape, pattern", [
    (nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular"), (1, 8), "padding_mode"),
    (nn.MaxPool1d(2, ceil_mode=True), (1, 7), "ceil_mode"),
    (nn.MaxPool2d(2, dilation=2), (1, 8, 8), "dilation"),
    (nn.AvgPool2d(2, count_include_pad=False), (1, 8, 8), "count_include_pad"),
    (nn.BatchNorm1d(1, track_running_stats=False), (1, 8), "track_running_stats"),
    (nn.BatchNorm1d(1, momentum=None), (1, 8), "momentum"),
    (nn.Flatten(0), (1, 8), "batch dim"),
    (nn.AlphaDropout(0.5), (1, 8, 8), "unsupported module"),
])
def test_unsupported_layer_options(layer, shape, pattern):
    model = nn.Sequential(layer, snn.Leaky(beta=0.9, init_hidden=True))
    with pytest.raises(sg.GraphError, match=pattern):
        sg.trace(model, torch.zeros(2, *shape))


# --- tied weights (#19 item 12) ------------------------------------------------------------------------
class _Tied(nn.Module):
    def __init__(self, tie_bias: bool = False, tie_beta: bool = False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 4)
        self.fc2.weight = self.fc1.weight
        if tie_bias:
            self.fc2.weight = nn.Parameter(self.fc1.weight.detach().clone())
            self.fc2.bias = self.fc1.bias
        self.lif1 = snn.Leaky(beta=0.9, init_hidden=True, learn_beta=True)
        self.lif2 = snn.Leaky(beta=0.9, init_hidden=True, learn_beta=True)
        if tie_beta:
            self.fc2.weight = nn.Parameter(self.fc1.weight.detach().clone())
            self.lif2.beta = self.lif1.beta

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


@pytest.mark.parametrize("kwargs, first, second", [
    ({}, "fc1.weight", "fc2.weight"),
    ({"tie_bias": True}, "fc1.bias", "fc2.bias"),
    ({"tie_beta": True}, "lif1.beta", "lif2.beta"),
])
def test_tied_parameters_are_refused_naming_both_modules(kwargs, first, second):
    with pytest.raises(sg.GraphError, match="tied weights") as info:
        sg.trace(_Tied(**kwargs), torch.zeros(2, 4))
    message = str(info.value)
    assert f"'{second}'" in message and f"'{first}'" in message and "test_fx_errors.py:" in message


def test_tied_weights_in_sequential_name_the_indices():
    model = nn.Sequential(nn.Linear(4, 4), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(4, 4),
                          snn.Leaky(beta=0.9, init_hidden=True))
    model[2].weight = model[0].weight
    with pytest.raises(sg.GraphError, match=r"'2\.weight'.*same tensor as '0\.weight'.*model\[2\]\.weight"):
        sg.trace(model, torch.zeros(2, 4))


def test_untied_copies_still_trace():
    model = _Tied()
    model.fc2.weight = nn.Parameter(model.fc1.weight.detach().clone())
    g = sg.trace(model, torch.zeros(2, 4))
    assert {"fc1.weight", "fc2.weight", "lif1.beta", "lif2.beta"} <= set(g.params())
