"""Built-in neuron models as small generic test graphs, from their declarations (``sg.neuron_models()``):
the shared cases of ``test_models_registry.py`` (scans, ONNX, round trips) and ``test_cuda_scans.py``.
Nothing here imports ONNX, so a GPU machine without it runs the device tests."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import snngraph as sg
from snngraph.runtimes.torch.capabilities import SCANS, torch_can_fuse

MODELS = sg.neuron_models()
BUILTIN = sorted(name for name, m in MODELS.items() if m.builtin)
N, T, B = 6, 12, 2
NAME = "n"


def candidates(spec: sg.ParamSpec) -> list[float]:
    """Valid values of a parameter from its declared range, the default (if any) first."""
    lo, hi = spec.low, spec.high
    if lo is not None and hi is not None:
        values = [lo + f * (hi - lo) for f in (0.9, 0.8, 0.6, 0.5, 0.95)]
    elif lo is not None:
        values = [lo + d for d in (2.0, 1.0, 4.0)]
    elif hi is not None:
        values = [hi - d for d in (1.0, 0.5, 2.0)]
    else:
        values = [1.0, 0.5, 1.5]
    if spec.default is not None:
        values = [float(spec.default), *(v for v in values if v != spec.default)]
    return [v for v in values if spec.violation(v, v) is None]


def option_combos(model: sg.NeuronModel) -> list[dict]:
    keys = list(model.options)
    return [dict(zip(keys, c, strict=True)) for c in itertools.product(*(model.options[k].choices for k in keys))]


def combo_id(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items()) or "no-options"


def learnable(model: sg.NeuronModel) -> tuple[str, ...]:
    return tuple(k for k, s in model.params.items() if s.learnable)


def build(model_name: str, values: dict | None = None, *, per_neuron: bool = False, learn: tuple[str, ...] = (),
          one_to_one: bool = False, **extra) -> sg.Graph:
    """input (N,) -> linear (fixed, 1/32-quantised weights) -> the neuron; every port an output.

    ``values``: parameter values (default: :func:`base_values`); ``per_neuron`` spreads each
    per-neuron parameter over the N neurons; recurrent models get fixed dense recurrent weights,
    or with ``one_to_one`` a per-neuron ``V``.
    """
    model = MODELS[model_name]
    values = dict(base_values(model_name) if values is None else values)
    rng = np.random.default_rng(0)
    g = sg.Graph(model_name)
    x = g.input("x", input_shape(model_name))
    w = (rng.integers(-6, 13, (N, N)) / 32).astype(np.float32)
    h = x if model.cell == "conv2d" else g.linear(x, N, weight=w, bias_value=np.full(N, 0.25, np.float32), name="fc")
    if model.cell is not None:  # fixed 1/32-quantised cell weights; N hidden features
        extra = cell_weights(model, rng, extra) | extra
    if per_neuron:
        spread = np.linspace(0.85, 1.0, N, dtype=np.float32)
        values = {k: (np.float32(v) * spread if model.params[k].per_neuron else v) for k, v in values.items()}
    if model.recurrent:
        if one_to_one:
            extra = dict(all_to_all=False, V=np.linspace(-0.5, 0.5, N, dtype=np.float32)) | extra
        else:
            extra = dict(recurrent_weight=(rng.integers(-8, 9, (N, N)) / 32).astype(np.float32),
                         recurrent_bias=(rng.integers(-4, 5, N) / 32).astype(np.float32)) | extra
    n = g.neuron(model_name, h, name=NAME, learn=learn, **values, **extra)
    for port in model.ports:
        g.output(port, getattr(n, port))
    return g


def input_shape(model_name: str) -> tuple[int, ...]:
    """(N,); a convolutional cell reads (1, 1, N) (one channel, one row)."""
    return (1, 1, N) if MODELS[model_name].cell == "conv2d" else (N,)


def cell_weights(model: sg.NeuronModel, rng: np.random.Generator, options: dict) -> dict:
    """A cell model's weights (gates * N pre-activations), fixed and 1/32-quantised; a heads model's
    present heads (at the ``options`` given), every dim N."""
    q = lambda *shape: (rng.integers(-8, 13, shape) / 32).astype(np.float32)  # noqa: E731
    if model.heads is not None:
        on = {k: options.get(k, o.default) for k, o in model.options.items()}
        present = [h for h in model.heads.sizes if h not in model.heads.when or on[model.heads.when[h]]]
        rows = {h: N ** len(model.heads.sizes[h]) for h in present}
        z = lambda *shape: (rng.integers(-12, 13, shape) / 32).astype(np.float32)  # noqa: E731  (centred: S rises and falls)
        return {f"{h}_{p}": z(rows[h], N) if p == "weight" else z(rows[h]) for h in present for p in ("weight", "bias")}
    gn = model.gates * N
    if model.cell == "linear":
        return dict(hidden_size=N, weight_ih=q(gn, N), weight_hh=q(gn, N), bias_ih=q(gn), bias_hh=q(gn))
    return dict(out_channels=N, kernel_size=(1, 3), conv_weight=q(gn, 1 + N, 1, 3), conv_bias=q(gn))


_BASE: dict[str, dict] = {}


def base_values(model_name: str) -> dict:
    """Declared defaults plus the first combination of candidate values of the required parameters
    that the builder accepts (``alpha`` needs alpha > beta, ...)."""
    if model_name not in _BASE:
        model = MODELS[model_name]
        defaults = {k: float(s.default) for k, s in model.params.items() if s.default is not None}
        if model.cell is not None:  # an LSTM's membrane o * tanh(c) stays below the default threshold 1
            defaults["threshold"] = 0.25
        required = [k for k, s in model.params.items() if s.default is None]
        for combo in itertools.product(*(candidates(model.params[k]) for k in required)):
            values = defaults | dict(zip(required, combo, strict=True))
            try:
                build(model_name, values)
            except sg.GraphError:
                continue
            _BASE[model_name] = values
            break
        else:
            raise AssertionError(f"{model_name}: no candidate values build")
    return _BASE[model_name]


def inputs(steps: int = T, batch: int = B, seed: int = 0, shape: tuple[int, ...] = (N,)) -> np.ndarray:
    """Inputs in multiples of 1/8 (float32-exact sums with the 1/32 weights), mostly positive."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-4, 25, (steps, batch, N)) / 8).astype(np.float32).reshape(steps, batch, *shape)


def graph_inputs(g: sg.Graph, steps: int = T, batch: int = B, seed: int = 0) -> np.ndarray:
    return inputs(steps, batch, seed, g.inputs["x"].shape)


def scan_cases() -> list:
    cases = []
    for m in BUILTIN:
        if m not in SCANS:
            continue
        for options in option_combos(MODELS[m]):
            node = build(m, **options).nodes[NAME]
            if torch_can_fuse(node):
                cases += [pytest.param(m, options, v, id=f"{m}-{combo_id(options)}-{v}") for v in variants(m)]
    return cases


def variants(model_name: str) -> list[str]:
    """Scalar or per-neuron parameters; recurrent models also with a one-to-one ``V``."""
    return ["scalar", "per_neuron", *(["one_to_one"] if MODELS[model_name].recurrent else [])]


def variant_kw(variant: str) -> dict:
    return dict(per_neuron=variant != "scalar", one_to_one=variant == "one_to_one")


def run_with_grads(net, x):
    x = x.clone().requires_grad_(True)
    out = net(x)
    loss = sum((v * torch.linspace(0.5, 1.5, v.numel(), dtype=v.dtype).reshape(v.shape)).sum() for v in out.values())
    params = dict(net.named_parameters())
    grads = torch.autograd.grad(loss, [x, *params.values()], allow_unused=True)
    return out, dict(zip(["input", *params], grads, strict=True))


def assert_grads_close(got: dict, want: dict, tol: float = 1e-10) -> None:
    """The same gradients (``None`` where the other is), relative ``tol`` of their scale (at least 1)."""
    assert got.keys() == want.keys()
    for key, expected in want.items():
        value = got[key]
        assert (value is None) == (expected is None), key
        if expected is not None:
            scale = max(1.0, float(expected.abs().max()))
            torch.testing.assert_close(value.cpu(), expected, rtol=tol, atol=tol * scale, msg=f"gradient of {key}")
