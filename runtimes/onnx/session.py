"""``sg.runtimes.onnx.Session``: a thin streaming runner over onnxruntime for exported snngraph models."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.runtimes.onnx.export import METADATA_KEY

Arrays = dict[str, np.ndarray]


class Session:
    """Run an ONNX model written by ``sg.export_onnx`` in onnxruntime.

    Args:
        path: the ``.onnx`` file (or its bytes).
        providers: onnxruntime execution providers, in order of preference.
        threads: intra-op threads (``None``: onnxruntime's default).

    Example::

        sess = Session("mlp_step.onnx")
        state = sess.init_state(batch_size=1)
        for x_t in stream:
            out, state = sess.step(x_t, state)
    """

    def __init__(self, path: str | os.PathLike | bytes, providers: Sequence[str] = ("CPUExecutionProvider",),
                 threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        source = path if isinstance(path, bytes) else os.fspath(path)
        self._sess = ort.InferenceSession(source, sess_options=options, providers=list(providers))
        props = self._sess.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise GraphError(f"{path!r} is not an snngraph ONNX export (no '{METADATA_KEY}' metadata)")
        self.meta: dict[str, Any] = json.loads(props[METADATA_KEY])
        self.mode: str = self.meta["mode"]
        self.input_names: list[str] = list(self.meta["inputs"])
        self.output_names: list[str] = list(self.meta["outputs"])
        self.state_names: list[str] = [s["name"] for s in self.meta["states"]]
        self._checks = {name: (len(dims), tuple((i, d) for i, d in enumerate(dims) if isinstance(d, int)))
                        for name, dims in self.meta["inputs"].items()}

    def init_state(self, batch_size: int = 1) -> Arrays:
        """A fresh (zero) state for ``batch_size`` streams, keyed like ``CompiledNet.init_state``."""
        if self.mode != "step":
            return {}
        return {s["name"]: np.zeros([batch_size if d == "B" else d for d in s["shape"]], np.float32)
                for s in self.meta["states"]}

    def _feed(self, x: Any) -> Arrays:
        if isinstance(x, Mapping):
            if set(x) != set(self.input_names):
                raise GraphError(f"model '{self.meta['graph']}' takes inputs {self.input_names}, got {sorted(x)}")
            items = x.items()
        else:
            items = ((self.input_names[0], x),)
        feed = {}
        for name, value in items:
            arr = _array(value)
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
        if state is None:
            state = self.init_state(next(iter(feed.values())).shape[0])
        try:
            for name in self.state_names:
                feed[name] = _array(state[name])
        except KeyError:
            missing = [s for s in self.state_names if s not in state]
            raise GraphError(f"state is missing {missing}; start from Session.init_state(batch_size)") from None
        results = self._run(feed)
        n = len(self.output_names)
        return dict(zip(self.output_names, results[:n], strict=True)), dict(
            zip(self.state_names, results[n:], strict=True))

    def run(self, x_seq: Any) -> Arrays:
        """Run a whole sequence ``(T, B, *shape)`` (or a dict by input name) from a fresh state.

        A step model is stepped over T; returns every output as ``(T, B, ...)``.
        """
        if self.mode == "sequence":
            feed = self._feed(x_seq)
            return dict(zip(self.output_names, self._run(feed), strict=True))
        seqs = dict(x_seq) if isinstance(x_seq, Mapping) else {self.input_names[0]: x_seq}
        seqs = {k: _numpy(v) for k, v in seqs.items()}
        steps = next(iter(seqs.values())).shape[0]
        state, collected = None, {k: [] for k in self.output_names}
        for t in range(steps):
            out, state = self.step({k: v[t] for k, v in seqs.items()}, state)
            for k, v in out.items():
                collected[k].append(v)
        return {k: np.stack(v) for k, v in collected.items()}

    def __repr__(self) -> str:
        return (f"<snngraph Session '{self.meta['graph']}' mode={self.mode} inputs={self.input_names} "
                f"outputs={self.output_names} states={len(self.state_names)}>")


def _array(value: Any) -> np.ndarray:
    """``value`` as a C-contiguous float32 numpy array (no copy when it already is one)."""
    if type(value) is np.ndarray and value.dtype == np.float32 and value.flags.c_contiguous:
        return value
    return np.ascontiguousarray(_numpy(value), dtype=np.float32)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _fmt(dims: list) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"
