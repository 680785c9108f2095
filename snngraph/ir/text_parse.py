"""Parser of the text form (see ``snngraph.ir.text``). Errors name the line."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from snngraph.ir import limits
from snngraph.ir.errors import GraphError
from snngraph.ir.schema import build_node, placeholder, placeholder_fill
from snngraph.ir.surrogate import SURROGATE_NAMES, Surrogate, checked_surrogate
from snngraph.ir.types import DTYPE_OF_SHORT, Param, Ref

MAX_TEXT = 64 * 2**20
MAX_PARAM_ELEMENTS = 2**28
PARAM_DTYPES = ("float32", "float64")  # what Param holds; f16/bf16 name value types only
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<ref>%[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
  | (?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<punct>[()<>\[\],=:])
""", re.VERBOSE)


class _Line:
    """Tokens of one line, consumed left to right."""

    def __init__(self, text: str, lineno: int):
        self.lineno, self.toks, pos = lineno, [], 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise self.error(f"unexpected character {text[pos]!r}")
            if m.lastgroup != "ws":
                self.toks.append((m.lastgroup, m.group()))
            pos = m.end()
        self.i = 0

    def error(self, message: str) -> GraphError:
        return GraphError(f"line {self.lineno}: {message}")

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("eol", "")

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        k, v = self.peek()
        if (kind and k != kind) or (value is not None and v != value) or k == "eol":
            want = value or kind or "a token"
            raise self.error(f"expected {want!r}, found {v or 'end of line'!r}")
        self.i += 1
        return v

    def accept(self, value: str) -> bool:
        if self.peek()[1] == value and self.peek()[0] in ("punct", "name"):
            self.i += 1
            return True
        return False

    def done(self) -> None:
        if self.i != len(self.toks):
            raise self.error(f"unexpected {self.peek()[1]!r}")


def _number(line: _Line) -> float | int:
    text = line.take("num")
    if len(text) > 400:  # also keeps int() below Python's digit limit
        raise line.error(f"number too long: {text[:20]}...")
    if any(c in text for c in ".eEn") and text not in ("inf", "-inf", "+inf"):
        return float(text)
    if "inf" in text:
        return float(text)
    return int(text)


def _float(line: _Line) -> float:
    """The next number as a float; an integer beyond the float range is a GraphError naming the line."""
    number = _number(line)
    try:
        return float(number)
    except OverflowError:
        raise line.error(f"number {str(number)[:20]}... is out of range") from None


def _value(line: _Line, field: str, op: str, depth: int = 0) -> Any:
    kind, tok = line.peek()
    if kind == "num":
        return _number(line)
    if kind == "str":
        line.take()
        try:
            return json.loads(tok)
        except ValueError:
            raise line.error(f"malformed string {tok!r:.80} in the value of {field}") from None
    if kind == "punct" and tok == "(":
        line.take()
        items: list[Any] = []
        while not line.accept(")"):
            if depth >= 4:
                raise line.error(f"the value of {field} is nested too deeply")
            items.append(_value(line, field, op, depth + 1))
            if not line.accept(","):
                line.take("punct", ")")
                break
        return tuple(items)
    if kind == "name":
        line.take()
        if tok in ("true", "false", "none"):
            return {"true": True, "false": False, "none": None}[tok]
        if tok in ("param", "const"):
            return _param(line, tok == "param", field, op)
        if tok in SURROGATE_NAMES:
            args = {}
            line.take("punct", "(")
            while not line.accept(")"):
                key = line.take("name")
                line.take("punct", "=")
                if key in args:
                    raise line.error(f"surrogate {tok}: parameter {key} given twice")
                args[key] = _float(line)
                if not line.accept(","):
                    line.take("punct", ")")
                    break
            return checked_surrogate(Surrogate(tok, tuple(args.items())), f"line {line.lineno}")
        if tok in ("custom", "callable"):
            raise line.error(f"surrogate '{tok}' holds user code and cannot be parsed; pass spike_grad again")
    raise line.error(f"unexpected {tok or 'end of line'!r} in the value of {field}")


def _param(line: _Line, learnable: bool, field: str, op: str) -> Param:
    dtype, shape = "float32", ()
    if line.accept("<"):
        short = line.take("name")
        if short not in DTYPE_OF_SHORT:
            raise line.error(f"unknown dtype {short!r}")
        dtype = DTYPE_OF_SHORT[short]
        if dtype not in PARAM_DTYPES:
            raise line.error(f"parameter {field}: dtype {short} is not supported for parameters (f32 or f64)")
        line.take("punct", "[")
        dims = []
        while not line.accept("]"):
            dims.append(_number(line))
            if not line.accept(","):
                line.take("punct", "]")
                break
        if not all(isinstance(d, int) and d > 0 for d in dims) or \
                np.prod(dims, dtype=np.float64) > limits.MAX_PARAM_ELEMENTS:
            raise line.error(f"invalid parameter shape {dims}")
        shape = tuple(dims)
        line.take("punct", ">")
    if not line.accept("("):
        if not shape:
            raise line.error(f"scalar parameter {field} needs a value")
        return _Deferred.declare(op, field, shape, dtype, learnable)
    values = []
    while not line.accept(")"):
        values.append(_float(line))
        if not line.accept(","):
            line.take("punct", ")")
            break
    if len(values) != max(1, int(np.prod(shape))):
        raise line.error(f"parameter {field}: {len(values)} values for shape {list(shape)}")
    arr = np.array(values)
    if dtype == "float32" and arr.size and float(np.max(np.abs(arr))) > float(np.finfo(np.float32).max):
        raise line.error(f"parameter {field}: values beyond the float32 range (write it as f64)")
    return Param(arr.reshape(shape), learnable, dtype)


class _Deferred(Param):
    """A parameter the text declares without values: a constant view (no memory) while the graph is
    checked, replaced by its :func:`placeholder` values once every check passed (see :func:`_materialize`)."""

    __slots__ = ("op", "field")

    @classmethod
    def declare(cls, op: str, field: str, shape: tuple[int, ...], dtype: str, learnable: bool) -> _Deferred:
        fill = placeholder_fill(op, field, shape)
        p = cls.filled_view(shape, 0.0 if fill is None else fill, dtype, learnable)
        object.__setattr__(p, "op", op)
        object.__setattr__(p, "field", field)
        return p

    def allocate(self) -> Param:
        return placeholder(self.op, self.field, self.shape, self.dtype, self.learnable)


def _materialize(g: Any) -> Any:
    """``g`` with every deferred parameter allocated (in node order, then field order: the RNG draws
    of the default initialisation follow the text)."""
    changes = {}
    for name, node in g.nodes.items():
        fields = {k: v.allocate() for k, v in node.fields().items() if isinstance(v, _Deferred)}
        if fields:
            changes[name] = node.replace(**fields)
    return g.with_nodes(changes) if changes else g


def _node_line(line: _Line) -> tuple[Any, list[tuple[int, Ref]], int]:
    name = line.take("ref")[1:]
    line.take("punct", "=")
    op = line.take("name")
    line.take("punct", "(")
    refs, fields = [], {}
    while not line.accept(")"):
        if line.peek()[0] == "ref":
            if fields:
                raise line.error("inputs must come before keyword fields")
            refs.append(line.take("ref")[1:])
        else:
            key = line.take("name")
            line.take("punct", "=")
            if key in fields:
                raise line.error(f"field {key} given twice")
            fields[key] = _value(line, key, op)
        if not line.accept(","):
            line.take("punct", ")")
            break
    line.take("punct", ":")  # the types after ':' are re-inferred and compared by parse()
    type_text = " ".join(v for _, v in line.toks[line.i:])
    line.i = len(line.toks)
    return (op, name, refs, fields, type_text), [], line.lineno


def parse(text: str) -> Any:
    """Read the text form back into a :class:`~snngraph.Graph`; errors name the line."""
    from snngraph.ir.graph import Graph
    from snngraph.ir.verify import check_arity, check_refs

    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise GraphError("parse: expected the text of a graph (a str of at most 64 MiB)")
    lines = [(i + 1, raw.split("#", 1)[0].strip()) for i, raw in enumerate(text.splitlines())]
    lines = [(i, s) for i, s in lines if s]
    _check_param_budget(lines)
    if not lines or not lines[0][1].startswith("graph "):
        raise GraphError(f"line {lines[0][0] if lines else 1}: expected 'graph NAME'")
    head = _Line(lines[0][1], lines[0][0])
    head.take("name", "graph")
    gname = head.take("name")
    head.done()
    if lines[-1][1] != "end":
        raise GraphError(f"line {lines[-1][0]}: expected 'end'")
    parsed, outputs = [], {}
    for lineno, body in lines[1:-1]:
        line = _Line(body, lineno)
        if line.peek() == ("name", "output"):
            line.take()
            key = line.take("name")
            line.take("punct", "=")
            target = line.take("ref")[1:]
            line.done()
            if key in outputs:
                raise line.error(f"duplicate output {key!r}")
            outputs[key] = (target, lineno)
        else:
            parsed.append(_node_line(line)[0] + (lineno,))
    nodes, declared = _build(parsed)
    ports = {n.name: n for n in nodes}
    outs = {k: _resolve(t, ports, ln) for k, (t, ln) in outputs.items()}
    try:
        g = Graph(gname, nodes, outs)
    except GraphError as e:
        raise GraphError(f"line {lines[1][0]}: {e}") from None
    for check in (check_arity, check_refs, lambda graph: graph.types()):
        try:
            check(g)
        except GraphError as e:
            raise GraphError(f"line {_line_of(e, g, declared)}: {e}") from None
    _check_types(g, declared)
    return _materialize(g)


def _line_of(error: GraphError, g: Any, declared: dict) -> Any:
    """The line of the node an error names: the one it starts with (``op 'name': ...``), else any."""
    text = str(error)
    node = next((n for n, nd in g.nodes.items() if text.startswith(f"{nd.op} '{n}'")), None)
    node = node or next((n for n in g.nodes if f"'{n}'" in text), None)
    return declared[node][1] if node in declared else "?"


_PARAM_SHAPE = re.compile(r"<\s*[A-Za-z0-9_]*\s*\[([^\]]*)\]")


def _check_param_budget(lines: list[tuple[int, str]]) -> None:
    """Parameters without values are allocated while parsing: cap their total size, so that a
    short text cannot make the parser allocate gigabytes."""
    total = 0
    for lineno, body in lines:
        for m in _PARAM_SHAPE.finditer(body):
            total += math.prod(int(d) if len(d) < 13 else 10**13 for d in re.findall(r"\d+", m.group(1)))
            if total > limits.MAX_PARAM_ELEMENTS:
                raise GraphError(f"line {lineno}: parameters exceed {limits.MAX_PARAM_ELEMENTS} "
                                 "elements in total (sg.limits.MAX_PARAM_ELEMENTS)")


def _resolve(text: str, nodes: dict, lineno: int) -> Ref:
    node, _, port = text.partition(".")
    if node not in nodes:
        raise GraphError(f"line {lineno}: unknown value %{text}")
    if port and port not in nodes[node].ports:
        raise GraphError(f"line {lineno}: '{node}' has no output '{port}' (it has {', '.join(nodes[node].ports)})")
    return Ref(node, port or nodes[node].default_port)


def _build(parsed: list) -> tuple[list, dict]:
    headers = {}
    for op, name, _refs, _fields, _types, lineno in parsed:
        if name in headers:
            raise GraphError(f"line {lineno}: duplicate node name '{name}'")
        from snngraph.ir.node import NODE_KINDS

        if op not in NODE_KINDS:
            raise GraphError(f"line {lineno}: unknown op {op!r}: not a node kind nor a registered neuron model "
                             "(sg.neuron_models(); declare it with sg.neuron_model before parsing)")
        headers[name] = NODE_KINDS[op]
    nodes, declared = [], {}
    for op, name, refs, fields, types, lineno in parsed:
        inputs = []
        for r in refs:
            node, _, port = r.partition(".")
            if node not in headers:
                raise GraphError(f"line {lineno}: input %{r} does not exist")
            inputs.append(Ref(node, port or headers[node].ports[0]))
        node = build_node(op, name, tuple(inputs), fields, f"line {lineno}")
        try:
            node.check()
        except GraphError as e:
            raise GraphError(f"line {lineno}: {e}") from None
        nodes.append(node)
        declared[name] = (types, lineno)
    return nodes, declared


def _check_types(g: Any, declared: dict) -> None:
    from snngraph.ir.text import to_text

    listing = to_text(g).splitlines()[1:]
    for (name, (types, lineno)), printed in zip(declared.items(), listing, strict=False):
        inferred = printed.rsplit(" : ", 1)[1]
        if _norm(types) != _norm(inferred):
            raise GraphError(f"line {lineno}: node '{name}' declares type {types} but its inputs give {inferred}")


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)
