"""``sg.runtimes.onnx.Session``: a thin streaming runner over onnxruntime for exported snngraph models."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from snngraph.ir import limits
from snngraph.ir.errors import GraphError
from snngraph.ir.files import regular_file
from snngraph.ir.types import NAME_RE
from snngraph.runtimes.onnx.build import BATCH
from snngraph.runtimes.onnx.export import METADATA_KEY, MODES

Arrays = dict[str, np.ndarray]
MAX_ELEMENTS = 2**31  # per tensor, as the IR bounds per-step shapes
_STATE_RE = re.compile(rf"{NAME_RE.pattern}\.{NAME_RE.pattern}")


class Session:
    """Run an ONNX model written by ``sg.export_onnx`` in onnxruntime.

    Args:
        path: the ``.onnx`` file (or its bytes).
        providers: onnxruntime execution providers, in order of preference.
        threads: intra-op threads (``None``: onnxruntime's default).
        spin: whether idle intra-op threads spin-wait for the next run (``None``: onnxruntime's
            default, on). Spinning lowers back-to-back latency but keeps the cores busy after a
            run; turn it off when other work shares the process.

    Example::

        sess = Session("mlp_step.onnx")
        state = sess.init_state(batch_size=1)
        for x_t in stream:
            out, state = sess.step(x_t, state)
    """

    def __init__(self, path: str | os.PathLike | bytes, providers: Sequence[str] = ("CPUExecutionProvider",),
                 threads: int | None = None, spin: bool | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        if spin is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        source = path if isinstance(path, bytes) else regular_file(path, "ONNX model")[0]
        label = "the model bytes" if isinstance(path, bytes) else repr(source)
        try:
            self._sess = ort.InferenceSession(source, sess_options=options, providers=list(providers))
        except Exception as err:  # onnxruntime's own errors for a missing, truncated or invalid file
            raise GraphError(f"cannot load {label} as an ONNX model: {err}") from err
        props = self._sess.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise GraphError(f"{label} is not an snngraph ONNX export (no '{METADATA_KEY}' metadata)")
        self.meta: dict[str, Any] = parse_metadata(props[METADATA_KEY], label)
        check_against_model(self.meta, self._sess, label)
        self.mode: str = self.meta["mode"]
        self.input_names: list[str] = list(self.meta["inputs"])
        self.output_names: list[str] = list(self.meta["outputs"])
        self.state_names: list[str] = [s["name"] for s in self.meta["states"]]
        self._state_dims = {s["name"]: s["shape"] for s in self.meta["states"]}
        self._shapes: dict[int, dict[str, tuple[int, ...]]] = {}  # batch -> expected state shapes
        self._checks = {name: (len(dims), tuple((i, d) for i, d in enumerate(dims) if isinstance(d, int)))
                        for name, dims in self.meta["inputs"].items()}

    def init_state(self, batch_size: int = 1) -> Arrays:
        """A fresh (zero) state for ``batch_size`` streams, keyed like ``CompiledNet.init_state``."""
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise GraphError(f"init_state: batch_size must be a positive int, got {batch_size!r}")
        if self.mode != "step":
            return {}
        shapes = self._state_shapes(int(batch_size), "init_state")
        return {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}

    def _state_shapes(self, batch: int, caller: str) -> dict[str, tuple[int, ...]]:
        """The state's shapes for ``batch`` streams (cached), refused before anything is allocated when
        an entry exceeds ``MAX_ELEMENTS`` or twice the state (read and written by a step) exceeds
        ``sg.limits.MAX_RUNTIME_BYTES``."""
        if batch in self._shapes:
            return self._shapes[batch]
        shapes = {name: tuple(batch if d == BATCH else d for d in self._state_dims[name]) for name in self.state_names}
        sizes = {name: math.prod(shape) for name, shape in shapes.items()}
        for name, size in sizes.items():
            if size > MAX_ELEMENTS:
                raise GraphError(f"{caller}: state '{name}' of shape {shapes[name]} for batch {batch} is too large")
        state = 4 * sum(sizes.values())  # float32
        if 2 * state > limits.MAX_RUNTIME_BYTES:
            largest = max(sizes, key=sizes.__getitem__)
            raise GraphError(f"{caller}: model '{self.meta['graph']}' declares a state of {state} bytes for batch "
                             f"{batch} (the largest entry, '{largest}' of shape {shapes[largest]}); a step reads and "
                             f"writes it, {2 * state} bytes, more than sg.limits.MAX_RUNTIME_BYTES = "
                             f"{limits.MAX_RUNTIME_BYTES}")
        return self._shapes.setdefault(batch, shapes)

    def _feed(self, x: Any) -> Arrays:
        if isinstance(x, Mapping):
            if set(x) != set(self.input_names):
                raise GraphError(f"model '{self.meta['graph']}' takes inputs {self.input_names}, got {sorted(x)}")
            items = x.items()
        else:
            items = ((self.input_names[0], x),)
        feed = {}
        for name, value in items:
            arr = _array(value, "input", name)
            ndim, fixed = self._checks[name]
            if arr.ndim != ndim or any(arr.shape[i] != d for i, d in fixed):
                raise GraphError(f"input '{name}': expected shape {_fmt(self.meta['inputs'][name])}, "
                                 f"got {tuple(arr.shape)}")
            feed[name] = arr
        return feed

    def _run(self, feed: Arrays) -> list[np.ndarray]:
        try:
            return self._sess.run(None, feed)
        except Exception as err:  # onnxruntime's own errors for wrong state shapes and the like
            raise GraphError(f"model '{self.meta['graph']}': onnxruntime rejected the inputs: {err}") from err

    def step(self, x_t: Any, state: Mapping[str, Any] | None = None) -> tuple[Arrays, Arrays]:
        """One time step: ``x_t`` of shape ``(B, *shape)`` (or a dict by input name) and the state.

        Returns:
            ``(outputs, new_state)``, both dicts of numpy arrays.
        """
        if self.mode != "step":
            raise GraphError("Session.step needs a model exported with mode='step'; this one is a sequence model "
                             "(use run)")
        feed = self._feed(x_t)
        batch = next(iter(feed.values())).shape[0]
        shapes = self._state_shapes(batch, "step")
        if state is None:
            state = self.init_state(batch)
        try:
            for name, want in shapes.items():
                arr = feed[name] = _array(state[name], "state", name)
                if arr.shape != want:
                    raise GraphError(f"state '{name}' rejected: expected shape {want} for a batch of {batch}, "
                                     f"got {tuple(arr.shape)}")
        except (KeyError, TypeError):
            if not isinstance(state, Mapping):
                raise GraphError(f"state must be a dict from Session.init_state, got {type(state).__name__}") from None
            missing = [s for s in self.state_names if s not in state]
            raise GraphError(f"state is missing {missing}; start from Session.init_state(batch_size)") from None
        if len(state) != len(shapes):
            unknown = [k for k in state if k not in shapes]
            raise GraphError(f"state has unknown entries {unknown}; start from Session.init_state(batch_size)")
        results = self._run(feed)
        n = len(self.output_names)
        return dict(zip(self.output_names, results[:n], strict=True)), dict(
            zip(self.state_names, results[n:], strict=True))

    def run(self, x_seq: Any) -> Arrays:
        """Run a whole sequence ``(T, B, *shape)`` (or a dict by input name) from a fresh state.

        A step model is stepped over T; returns every output as ``(T, B, ...)``.
        """
        seqs = dict(x_seq) if isinstance(x_seq, Mapping) else {self.input_names[0]: x_seq}
        seqs = {k: _numpy(v, "input", k) for k, v in seqs.items()}
        lengths = {k: tuple(v.shape[:2]) for k, v in seqs.items()}
        steps = next(iter(lengths.values()), (0,))[:1]
        if not lengths or any(len(n) < 2 or n[:1] != steps or min(n) < 1 for n in lengths.values()):
            raise GraphError(f"model '{self.meta['graph']}': run needs sequences (T, B, ...) with T >= 1, B >= 1 and "
                             f"the same T for every input; got (T, B) = {lengths}")
        if self.mode == "sequence":
            return dict(zip(self.output_names, self._run(self._feed(seqs)), strict=True))
        state, collected = None, {k: [] for k in self.output_names}
        for t in range(steps[0]):
            out, state = self.step({k: v[t] for k, v in seqs.items()}, state)
            for k, v in out.items():
                collected[k].append(v)
        return {k: np.stack(v) for k, v in collected.items()}

    def __repr__(self) -> str:
        return (f"<snngraph Session '{self.meta['graph']}' mode={self.mode} inputs={self.input_names} "
                f"outputs={self.output_names} states={len(self.state_names)}>")


def _array(value: Any, kind: str, name: str) -> np.ndarray:
    """``value`` as a C-contiguous float32 numpy array (no copy when it already is one)."""
    if type(value) is np.ndarray and value.dtype == np.float32 and value.flags.c_contiguous:
        return value
    return np.ascontiguousarray(_numpy(value, kind, name), dtype=np.float32)


def _numpy(value: Any, kind: str, name: str) -> np.ndarray:
    """``value`` (array, tensor, nested lists) as a numpy array of real numbers, or GraphError naming it."""
    try:
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise GraphError(f"{kind} '{name}': expected an array of real numbers, got {type(value).__name__} "
                         f"({err})") from None
    if arr.dtype.kind not in "biuf":
        raise GraphError(f"{kind} '{name}': expected real numbers (converted to float32), got dtype {arr.dtype}")
    return arr


def parse_metadata(text: str, label: str) -> dict[str, Any]:
    """The ``snngraph`` metadata JSON, checked: mode, graph name, input/output/state names and dims.

    Dims are positive ints or symbols (``"B"``, ``"T"``); state dims are ints or ``"B"``; no tensor
    declares more than ``MAX_ELEMENTS`` elements. Raises GraphError naming the offending entry.
    """
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise GraphError(f"{label}: metadata '{METADATA_KEY}' is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise GraphError(f"{label}: metadata '{METADATA_KEY}' must be a JSON object, got {type(meta).__name__}")
    for key, kind, word in (("graph", str, "string"), ("mode", str, "string"), ("inputs", dict, "object"),
                            ("outputs", dict, "object"), ("states", list, "array")):
        if not isinstance(meta.get(key), kind):
            raise GraphError(f"{label}: metadata key '{key}' is missing or not a JSON {word}")
    _check_names(meta, label)
    if meta["mode"] not in MODES:
        raise GraphError(f"{label}: metadata mode must be one of {MODES}, got {meta['mode']!r}")
    if not meta["inputs"]:
        raise GraphError(f"{label}: metadata lists no inputs")
    for group in ("inputs", "outputs"):
        for name, dims in meta[group].items():
            _check_dims(dims, f"{label}: metadata {group[:-1]} '{name}'", symbols=True)
    for i, entry in enumerate(meta["states"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "shape" not in entry:
            raise GraphError(f"{label}: metadata state #{i} must be an object with a 'name' and a 'shape'")
        _check_dims(entry["shape"], f"{label}: metadata state '{entry['name']}'", symbols=False)
    if meta["mode"] == "sequence" and meta["states"]:
        raise GraphError(f"{label}: a sequence model takes no state, but its metadata lists states")
    return meta


def _check_names(meta: dict[str, Any], label: str) -> None:
    """The graph, input and output names must be identifiers, and state names dotted ones (``lif1.mem``):
    they reach messages and ``repr``, where a newline or an escape sequence could forge output."""
    names = [("graph", meta["graph"], NAME_RE)] + [(kind[:-1], n, NAME_RE) for kind in ("inputs", "outputs")
                                                  for n in meta[kind]]
    names += [("state", s.get("name"), _STATE_RE) for s in meta["states"] if isinstance(s, dict)]
    for kind, name, pattern in names:
        if isinstance(name, str) and not pattern.fullmatch(name):
            raise GraphError(f"{label}: metadata {kind} name {name!r:.80} is not a valid name")


def _check_dims(dims: Any, what: str, symbols: bool) -> None:
    if not isinstance(dims, list) or not dims:
        raise GraphError(f"{what}: shape must be a non-empty list of dims, got {dims!r}")
    for d in dims:
        symbol = isinstance(d, str) and (d.isidentifier() if symbols else d == BATCH)
        if not symbol and (not isinstance(d, int) or isinstance(d, bool) or d < 1):
            kinds = "positive ints or symbols like 'B'" if symbols else f"positive ints or '{BATCH}'"
            raise GraphError(f"{what}: shape {dims!r} must hold {kinds}")
    if math.prod(d for d in dims if isinstance(d, int)) > MAX_ELEMENTS:
        raise GraphError(f"{what}: shape {dims!r} is too large")


def check_against_model(meta: dict[str, Any], sess: Any, label: str) -> None:
    """The metadata must describe the model: input and output names in order, float32, the same dims."""
    states = [s["name"] for s in meta["states"]]
    declared = ([*meta["inputs"], *states], [*meta["outputs"], *(f"{s}.next" for s in states)])
    dims = ([*meta["inputs"].values(), *(s["shape"] for s in meta["states"])],
            [*meta["outputs"].values(), *(s["shape"] for s in meta["states"])])
    for kind, names, shapes, args in zip(("inputs", "outputs"), declared, dims,
                                         (sess.get_inputs(), sess.get_outputs()), strict=True):
        actual = [a.name for a in args]
        if actual != names:
            raise GraphError(f"{label}: metadata lists {kind} {names}, but the model has {actual}")
        for arg, want in zip(args, shapes, strict=True):
            got = list(arg.shape)
            same = len(got) == len(want) and all(
                g == w if isinstance(w, int) else not isinstance(g, int) for g, w in zip(got, want, strict=True))
            if arg.type != "tensor(float)" or not same:
                raise GraphError(f"{label}: metadata gives '{arg.name}' shape {_fmt(want)} (float32), but the model "
                                 f"declares {_fmt(got)} ({arg.type})")


def _fmt(dims: list) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"
