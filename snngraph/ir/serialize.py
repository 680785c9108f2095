"""Saving and loading graphs: one safetensors file whose header metadata holds the graph
structure as JSON and whose tensors are the parameters. No pickle; loading runs no code
from the file, checks every field and raises ``GraphError`` on anything malformed."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.ir.files import regular_file
from snngraph.ir.schema import build_node
from snngraph.ir.surrogate import SURROGATE_NAMES, Surrogate, checked_surrogate
from snngraph.ir.types import NAME_RE, Param, Ref

FORMAT = "snngraph.graph/1"
MAX_FILE = 4 * 2**30
MAX_HEADER = 64 * 2**20
CHECKSUM_KEY = "snngraph.sha256"


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, Surrogate):
        if value.name not in SURROGATE_NAMES:
            raise GraphError(f"{where}: surrogate '{value.name}' holds user code and cannot be saved")
        return {"surrogate": value.name, "params": [[k, v] for k, v in value.params]}
    if isinstance(value, tuple):
        return list(value)
    return value


def _real(value: Any) -> bool:
    """A JSON number that is a float or fits one (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _decode(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if set(value) != {"surrogate", "params"} or value["surrogate"] not in SURROGATE_NAMES:
            raise GraphError(f"{where}: malformed surrogate {value!r:.80}")
        params = value["params"]
        if not isinstance(params, list) or not all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _real(p[1]) for p in params):
            raise GraphError(f"{where}: malformed surrogate parameters")
        return checked_surrogate(Surrogate(value["surrogate"], tuple((k, float(v)) for k, v in params)), where)
    if isinstance(value, list):
        return tuple(value)
    return value


def _path(path: Any, what: str) -> str:
    """``path`` as a str: a str or an ``os.PathLike`` naming one (bytes paths are refused)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise GraphError(f"{what}: path must be a str or os.PathLike, got {type(path).__name__} {path!r:.80}")
    return path


def save(graph: Any, path: str | os.PathLike) -> None:
    """Write ``graph`` (structure and parameter values) to one ``.sg`` safetensors file.

    The file is created like any file Python writes (mode 0666 less the umask: 0644 by default).
    """
    from safetensors.numpy import save as to_bytes

    from snngraph.ir.verify import verify

    path = _path(path, "sg.save")
    verify(graph)
    nodes, tensors = [], {}
    for name, node in graph.nodes.items():
        attrs, params = {}, {}
        for key, value in node.fields().items():
            if isinstance(value, Param):
                tkey = f"{name}.{key}"
                tensors[tkey] = np.ascontiguousarray(value.value)
                params[key] = {"tensor": tkey, "learnable": value.learnable, "shape": list(value.shape)}
            else:
                attrs[key] = _encode(value, f"node '{name}' field {key}")
        nodes.append({"name": name, "op": node.op, "inputs": [[r.node, r.port] for r in node.inputs],
                      "attrs": attrs, "params": params})
    outputs = [[k, r.node, r.port] for k, r in graph.outputs.items()]
    structure = {"format": FORMAT, "name": graph.name, "nodes": nodes, "outputs": outputs}
    if graph.module_paths:  # a traced model's own module paths (its state_dict keys)
        structure["module_paths"] = dict(graph.module_paths)
    text = json.dumps(structure)
    data = to_bytes(tensors, metadata={"snngraph": text, CHECKSUM_KEY: checksum(text, tensors)})
    with open(path, "wb") as f:  # safetensors' save_file creates files readable by their owner only (0600)
        f.write(data)


def checksum(structure: str, tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over the structure and every tensor's name, dtype, shape and bytes: a bit flip
    anywhere in a saved file is detected."""
    h = hashlib.sha256(structure.encode())
    for key in sorted(tensors):
        arr = np.ascontiguousarray(tensors[key])
        h.update(f"\0{key}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def load(path: str | os.PathLike) -> Any:
    """Read a graph written by :func:`save`; a corrupt or hostile file raises ``GraphError``."""
    path = _path(path, "sg.load")
    path, size = regular_file(path, "graph file")
    if size > MAX_FILE:
        raise GraphError(f"{path}: file of {size} bytes is larger than the {MAX_FILE} byte limit")
    header, tensors = _read(path, size)
    return _from_structure(header, tensors, path)


def _read(path: str, size: int) -> tuple[dict, dict[str, np.ndarray]]:
    from safetensors import safe_open

    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise GraphError(f"cannot read graph file {path!r}: {e.strerror}") from None
    if len(head) < 8 or int.from_bytes(head, "little") > min(MAX_HEADER, size - 8):
        raise GraphError(f"{path}: not an snngraph file (bad or truncated header)")
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as e:  # safetensors reports corruption with several exception types
        raise GraphError(f"{path}: corrupt snngraph file ({type(e).__name__}: {e})") from None
    try:
        structure = json.loads(meta["snngraph"])
    except (KeyError, ValueError, TypeError, RecursionError):  # RecursionError: absurdly nested JSON
        raise GraphError(f"{path}: no snngraph structure in the file's metadata") from None
    if meta.get(CHECKSUM_KEY) != checksum(meta["snngraph"], tensors):
        raise GraphError(f"{path}: corrupt snngraph file (checksum mismatch)")
    if not isinstance(structure, dict) or structure.get("format") != FORMAT:
        raise GraphError(f"{path}: unknown format {structure.get('format') if isinstance(structure, dict) else None!r}")
    return structure, tensors


def _is_names(value: Any, n: int) -> bool:
    """Whether ``value`` is a list of ``n`` valid identifiers (names read from a file reach ``str(g)`` and
    the terminal: a newline or an escape sequence in one could forge a line of the listing)."""
    return isinstance(value, list) and len(value) == n and all(
        isinstance(x, str) and NAME_RE.fullmatch(x) for x in value)


def _from_structure(s: dict, tensors: dict[str, np.ndarray], path: str) -> Any:
    from snngraph.ir.graph import Graph
    from snngraph.ir.verify import verify

    nodes_in, outputs_in = s.get("nodes"), s.get("outputs")
    if not isinstance(nodes_in, list) or not isinstance(outputs_in, list) or not isinstance(s.get("name"), str):
        raise GraphError(f"{path}: malformed structure (name, nodes and outputs required)")
    nodes = []
    for i, entry in enumerate(nodes_in):
        where = f"{path}: node #{i}"
        if not isinstance(entry, dict) or set(entry) != {"name", "op", "inputs", "attrs", "params"}:
            raise GraphError(f"{where}: malformed entry")
        inputs = entry["inputs"]
        if not isinstance(inputs, list) or not all(_is_names(r, 2) for r in inputs):
            raise GraphError(f"{where}: malformed inputs (each a [node, port] pair of identifiers)")
        if not isinstance(entry["attrs"], dict) or not isinstance(entry["params"], dict):
            raise GraphError(f"{where}: malformed attrs/params")
        fields = {k: _decode(v, where) for k, v in entry["attrs"].items()}
        for key, spec in entry["params"].items():
            if not isinstance(spec, dict) or spec.get("tensor") not in tensors or not isinstance(
                    spec.get("learnable"), bool):
                raise GraphError(f"{where}: parameter {key!r} refers to a missing tensor")
            arr, shape = tensors[spec["tensor"]], spec.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                      for d in shape) or \
                    int(np.prod(shape, dtype=np.float64)) != arr.size:
                raise GraphError(f"{where}: parameter {key!r} has a malformed shape")
            arr = arr.reshape(shape)
            if arr.dtype not in (np.float32, np.float64):
                raise GraphError(f"{where}: parameter {key!r} has dtype {arr.dtype}, expected float32/float64")
            fields[key] = Param(arr, spec["learnable"], str(arr.dtype))
        nodes.append(build_node(entry["op"], entry["name"], tuple(Ref(*r) for r in inputs), fields, where))
    outputs = {}
    for o in outputs_in:
        if not _is_names(o, 3) or o[0] in outputs:
            raise GraphError(f"{path}: malformed or duplicate output {o!r:.80} (expected [name, node, port], "
                             "each an identifier)")
        outputs[o[0]] = Ref(o[1], o[2])
    try:
        paths = s.get("module_paths", {})
        if not isinstance(paths, dict) or not {str(k).split(".")[0] for k in paths} <= {n.name for n in nodes}:
            raise GraphError("module_paths must map node names of this graph to module paths")
        return verify(Graph(s["name"], nodes, outputs, paths))
    except GraphError as e:
        raise GraphError(f"{path}: {e}") from None
