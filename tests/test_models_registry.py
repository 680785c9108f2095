"""Every built-in neuron model, driven by its declaration in the registry (``sg.neuron_models()``):
a newly declared model is covered without editing this file.

For each model a small graph is built generically from the declaration (required parameters from
their ranges, defaults for the rest), and checked for: every declared parameter and option
reaching the outputs; the torch scans equal to the derived step (forward bit for bit, gradients
within 1e-10); ONNX equal to torch in every export mode and option combination; text and file
round trips; and an unregistered model name in text or a file being an error naming it.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import torch
from onnx_helpers import assert_close
from safetensors import safe_open
from safetensors.numpy import save_file

import snngraph as sg
from snngraph.ir.serialize import CHECKSUM_KEY, checksum
from snngraph.passes import default_pipeline
from snngraph.runtimes.onnx import Session
from snngraph.runtimes.torch.capabilities import SCANS, torch_can_fuse

MODELS = sg.neuron_models()
BUILTIN = sorted(name for name, m in MODELS.items() if m.builtin)
N, T, B = 6, 12, 2
NAME = "n"
UNFUSED = [p for p in default_pipeline() if p.name != "fuse_state_updates"]  # the derived step kernels


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


def forward(g: sg.Graph, x: np.ndarray | None = None, passes=None) -> dict[str, torch.Tensor]:
    net = sg.compile(g, passes=passes).eval()
    with torch.no_grad():
        return net(torch.from_numpy(graph_inputs(g) if x is None else x))


def differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


# 1. every declared field reaches the outputs of the derived step (unfused: no hand-written scan in between)

FIELDS = [(m, k) for m in BUILTIN for k in MODELS[m].params]
OPTIONS = [(m, k) for m in BUILTIN for k in MODELS[m].options]


@pytest.mark.parametrize("model_name", BUILTIN)
def test_base_graph_spikes_and_resets(model_name):
    model = MODELS[model_name]
    g = build(model_name)
    if model.spiking and not g.nodes[NAME].emits_spikes:  # a readout of the spikes (associative_leaky's to_q):
        g = next(h for h in (build(model_name, **o) for o in option_combos(model)) if h.nodes[NAME].emits_spikes)
    out = forward(g, passes=UNFUSED)
    if model.spiking:
        spk = out["spk"]
        assert 0 < int((spk != 0).sum()) < spk.numel(), "the base input must make some, not all, neurons spike"
        assert bool(((spk[:-1] != 0) & (spk[1:] == 0)).any()), "a spike followed by silence (resets matter)"
    for port in model.ports:
        assert torch.isfinite(out[port]).all(), port


@pytest.mark.parametrize(("model_name", "param"), FIELDS, ids=[f"{m}-{k}" for m, k in FIELDS])
def test_every_parameter_changes_the_outputs(model_name, param):
    base = base_values(model_name)
    want = forward(build(model_name), passes=UNFUSED)
    tried = []
    for value in candidates(MODELS[model_name].params[param]):
        if value == base[param]:
            continue
        try:
            g = build(model_name, base | {param: value})
        except sg.GraphError:  # a model invariant (alpha > beta)
            continue
        tried.append(value)
        if differs(forward(g, passes=UNFUSED), want):
            return
    raise AssertionError(f"{model_name}: {param} = {tried} (other than {base[param]}) changes no output: "
                         "the declared parameter is not used")


@pytest.mark.parametrize(("model_name", "option"), OPTIONS, ids=[f"{m}-{k}" for m, k in OPTIONS])
def test_every_option_choice_changes_the_outputs(model_name, option):
    choices = MODELS[model_name].options[option].choices
    outs = {c: forward(build(model_name, **{option: c}), passes=UNFUSED) for c in choices}
    for a, b in itertools.combinations(outs, 2):
        if not differs(outs[a], outs[b]):  # an option of the backward pass only (SpikingJelly's detach_reset)
            grads = [input_grads(build(model_name, **{option: c})) for c in (a, b)]
            assert differs(*grads), f"{model_name}: {option}={a!r} and {option}={b!r} give the same outputs " \
                                    "and gradients"


def input_grads(g: sg.Graph) -> dict[str, torch.Tensor]:
    """The gradient of a fixed weighting of every output with respect to the input."""
    net = sg.compile(g, passes=UNFUSED).double()
    x = torch.from_numpy(inputs()).double().requires_grad_(True)
    out = net(x)
    gen = torch.Generator().manual_seed(0)
    loss = sum((v * torch.randn(v.shape, generator=gen, dtype=v.dtype)).sum() for v in out.values())
    loss.backward()
    return {"x": x.grad}


# 2. the torch scans equal the derived step kernel

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


@pytest.mark.parametrize(("model_name", "options", "variant"), scan_cases())
def test_scan_equals_derived_step(model_name, options, variant):
    model = MODELS[model_name]
    g = build(model_name, learn=learnable(model), **variant_kw(variant), **options)
    fused = sg.compile(g).double()
    unfused = sg.compile(g, passes=UNFUSED).double()
    assert fused.graph.nodes[NAME].fused and not unfused.graph.nodes[NAME].fused
    names = {k for k, _ in fused.named_parameters()}
    assert {f"{NAME}.{k}" for k in learnable(model)} <= names
    x = torch.from_numpy(graph_inputs(g)).double()
    out_a, grads_a = run_with_grads(unfused, x)
    out_b, grads_b = run_with_grads(fused, x)
    if model.spiking:
        assert out_a["spk"].sum() > 0
    assert out_a.keys() == out_b.keys()
    for key in out_a:
        assert torch.equal(out_a[key], out_b[key]), f"forward output {key}"
    assert grads_a.keys() == grads_b.keys()
    for key, want in grads_a.items():
        got = grads_b[key]
        assert (got is None) == (want is None), key
        if want is not None:
            scale = max(1.0, float(want.abs().max()))
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10 * scale, msg=f"gradient of {key}")


# 3. ONNX vs torch, every export mode and every option combination

MODES = ("sequence", "step", "unrolled")
ONNX_CASES = [pytest.param(m, o, "scalar", mode, id=f"{m}-{combo_id(o)}-{mode}")
              for m in BUILTIN for o in option_combos(MODELS[m]) for mode in MODES]
ONNX_CASES += [pytest.param(m, {}, v, mode, id=f"{m}-{v}-{mode}")
               for m in BUILTIN for v in variants(m)[1:] for mode in MODES]


@pytest.mark.parametrize(("model_name", "options", "variant", "mode"), ONNX_CASES)
def test_onnx_matches_torch(model_name, options, variant, mode, tmp_path):
    model = MODELS[model_name]
    g = build(model_name, **variant_kw(variant), **options)
    steps = 8
    xs = graph_inputs(g, steps, B, seed=1)
    net = sg.compile(g).eval()
    with torch.no_grad():
        want = {k: v.numpy() for k, v in net(torch.from_numpy(xs)).items()}
    spikes = {k: g.type_of(r).spike for k, r in g.outputs.items()}
    path = tmp_path / "m.onnx"
    if mode == "step":
        sg.export_onnx(g, path, mode="step")
        sess = Session(path)
        state, eager_state, outs = sess.init_state(B), net.init_state(B), []
        assert list(state) == list(eager_state)
        for t in range(steps):
            out, state = sess.step(xs[t], state)
            with torch.no_grad():
                _, eager_state = net.step(torch.from_numpy(xs[t]), eager_state)
            for key, value in eager_state.items():
                assert_close(f"state {key} at t={t}", state[key], value.numpy(), spike=key.endswith(".spk"))
            outs.append(out)
        got = {k: np.stack([o[k] for o in outs]) for k in want}
    else:
        sg.export_onnx(g, path, mode="sequence", **(dict(num_steps=steps, unroll=True) if mode == "unrolled" else {}))
        got = Session(path).run(xs)
    assert set(got) == set(want)
    for key in want:
        assert_close(key, got[key], want[key], spikes[key])
    if model.spiking:
        assert want["spk"].sum() > 0


# 4. text and file round trips

def round_trip_graphs(model_name: str) -> dict[str, sg.Graph]:
    model = MODELS[model_name]
    last = {k: o.choices[-1] for k, o in model.options.items()}
    plain = build(model_name)
    learnt = build(model_name, per_neuron=True, one_to_one=model.recurrent, learn=learnable(model), **last)
    return {"defaults": plain, "per_neuron_learnt": learnt, "compiled": sg.compile(plain).graph}


@pytest.mark.parametrize("model_name", BUILTIN)
def test_text_and_file_round_trips(model_name, tmp_path):
    for variant, g in round_trip_graphs(model_name).items():
        x = graph_inputs(g)
        path = tmp_path / f"{variant}.sg"
        sg.save(g, path)
        want = forward(g, x)
        for how, back in (("text", sg.parse(g.to_text(with_params=True))), ("file", sg.load(path))):
            assert back.nodes == g.nodes, f"{variant} via {how}"
            assert back.outputs == g.outputs, f"{variant} via {how}"
            got = forward(back, x)
            assert not differs(got, want), f"{variant} via {how}: compiled outputs differ"


# 5. an unregistered model name is an error naming it

UNKNOWN = "not_a_registered_model_q7"


@pytest.mark.parametrize("model_name", BUILTIN)
def test_unregistered_model_in_text(model_name):
    text = build(model_name).to_text(with_params=True)
    edited = re.sub(rf"= {model_name}\(", f"= {UNKNOWN}(", text)
    assert edited != text
    with pytest.raises(sg.GraphError, match=UNKNOWN):
        sg.parse(edited)


@pytest.mark.parametrize("model_name", BUILTIN)
def test_unregistered_model_in_file(model_name, tmp_path):
    path = tmp_path / "g.sg"
    sg.save(build(model_name), path)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    structure = json.loads(meta["snngraph"])
    [entry] = [e for e in structure["nodes"] if e["name"] == NAME]
    assert entry["op"] == model_name
    entry["op"] = UNKNOWN
    text = json.dumps(structure)
    save_file(tensors, str(path), metadata={"snngraph": text, CHECKSUM_KEY: checksum(text, tensors)})
    with pytest.raises(sg.GraphError, match=UNKNOWN):
        sg.load(path)
