"""Parse errors of the text form name the line: bad token, unknown op, unknown input, duplicate node,
wrong field type, mismatched declared type, and the other malformed listings."""

import pytest

import snngraph as sg

VALID = """\
graph mlp
  %x = input(shape=(4,), dtype="float32") : f32[4]
  %fc = linear(%x, in_features=4, out_features=3, weight=param<f32[3,4]>, bias=param<f32[3]>) : f32[3]
  %lif = leaky(%fc, threshold=1.0, reset_mechanism="subtract", reset_delay=true, graded_spikes_factor=1.0, beta=0.9) \
: spk=spike f32[3], mem=f32[3]
  output spk = %lif
  output mem = %lif.mem
end
"""
LINES = VALID.splitlines()


def edit(lineno, new):
    """VALID with line ``lineno`` (1-based) replaced by ``new`` (a list of lines inserts several)."""
    lines = list(LINES)
    lines[lineno - 1:lineno] = new if isinstance(new, list) else [new]
    return "\n".join(lines) + "\n"


def test_valid_listing_parses():
    g = sg.parse(VALID)
    assert list(g.nodes) == ["x", "fc", "lif"]
    assert list(g.outputs) == ["spk", "mem"]
    assert g.nodes["lif"].beta.item() == pytest.approx(0.9)


CASES = {
    "bad_token": (3, LINES[2] + " $", "unexpected character"),
    "bad_token_in_args": (3, LINES[2].replace("out_features=3", "out_features=3 ?"), "unexpected character"),
    "unknown_op": (3, LINES[2].replace("= linear(", "= dense("), "unknown op 'dense'"),
    "unknown_input": (3, LINES[2].replace("linear(%x", "linear(%y"), "%y does not exist"),
    "unknown_input_port": (4, LINES[3].replace("leaky(%fc", "leaky(%fc.mem"), "'fc' has no output 'mem'"),
    "duplicate_node": (4, LINES[3].replace("%lif =", "%fc ="), "duplicate node name 'fc'"),
    "wrong_field_type_str": (3, LINES[2].replace("out_features=3", 'out_features="3"'), "out_features"),
    "wrong_field_type_float": (3, LINES[2].replace("out_features=3", "out_features=3.0"), "expected int"),
    "wrong_field_type_bool": (4, LINES[3].replace("reset_delay=true", "reset_delay=1"), "expected bool"),
    "wrong_field_type_tuple": (2, LINES[1].replace("shape=(4,)", "shape=4"), "shape"),
    "param_for_string": (4, LINES[3].replace('reset_mechanism="subtract"', "reset_mechanism=param<f32[3]>"),
                         "reset_mechanism"),
    "unknown_field": (3, LINES[2].replace("out_features=3", "out_features=3, gain=2"), "gain"),
    "missing_field": (4, LINES[3].replace(", beta=0.9", ""), "missing ['beta']"),
    "field_twice": (4, LINES[3].replace("beta=0.9", "beta=0.9, beta=0.8"), "given twice"),
    "mismatched_declared_type": (3, LINES[2].replace(": f32[3]", ": f32[5]"), "declares type"),
    "mismatched_declared_port_type": (4, LINES[3].replace("spk=spike f32[3]", "spk=f32[3]"), "declares type"),
    "shape_mismatch": (3, LINES[2].replace("in_features=4", "in_features=5"), "expects 5 input features"),
    "weight_shape_mismatch": (3, LINES[2].replace("f32[3,4]", "f32[4,3]"), "weight must have shape"),
    "beta_out_of_range": (4, LINES[3].replace("beta=0.9", "beta=1.5"), "beta must lie in [0, 1]"),
    "non_finite_parameter": (4, LINES[3].replace("threshold=1.0", "threshold=inf"), "threshold"),
    "nan_parameter_values": (3, LINES[2].replace("bias=param<f32[3]>", "bias=param<f32[3]>(1.0, nan, 2.0)"),
                             "non-finite"),
    "wrong_value_count": (3, LINES[2].replace("bias=param<f32[3]>", "bias=param<f32[3]>(1.0, 2.0)"),
                          "2 values for shape [3]"),
    "bad_param_shape": (3, LINES[2].replace("bias=param<f32[3]>", "bias=param<f32[0]>"), "invalid parameter shape"),
    "absurd_param_shape": (3, LINES[2].replace("bias=param<f32[3]>", "bias=param<f32[100000,100000]>"),
                           "parameters exceed"),
    "number_too_long": (3, LINES[2].replace("out_features=3", "out_features=" + "9" * 5000), "number too long"),
    "deeply_nested": (2, LINES[1].replace("shape=(4,)", "shape=" + "(" * 5000 + ")" * 5000), "nested too deeply"),
    "unknown_dtype": (3, LINES[2].replace("bias=param<f32[3]>", "bias=param<i8[3]>"), "unknown dtype"),
    "unknown_input_dtype": (2, LINES[1].replace('"float32"', '"int8"'), "unknown dtype"),
    "bad_input_shape": (2, LINES[1].replace("shape=(4,)", "shape=(-4,)"), "shape"),
    "inputs_after_fields": (3, LINES[2].replace("linear(%x, in_features=4", "linear(in_features=4, %x"),
                            "inputs must come before"),
    "missing_colon": (3, LINES[2].replace(" : f32[3]", ""), "expected ':'"),
    "unclosed_paren": (3, LINES[2].replace("bias=param<f32[3]>)", "bias=param<f32[3]>"), "expected ')'"),
    "too_few_inputs": (3, LINES[2].replace("linear(%x, ", "linear("), "takes 1 inputs, got 0"),
    "unknown_output_value": (5, "  output spk = %nope", "unknown value %nope"),
    "duplicate_output": (6, "  output spk = %lif.mem", "duplicate output 'spk'"),
    "malformed_output": (5, "  output spk %lif", "expected '='"),
    "custom_surrogate": (4, LINES[3].replace("beta=0.9", "beta=0.9, surrogate=custom()"), "cannot be parsed"),
    "unknown_surrogate_arg": (4, LINES[3].replace("beta=0.9", "beta=0.9, surrogate=atan(alpha=x)"), "expected"),
    "garbage_line": (4, "  this is not a node", "expected"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parse_error_names_the_line(case):
    lineno, line, message = CASES[case]
    text = edit(lineno, line)
    with pytest.raises(sg.GraphError) as info:
        sg.parse(text)
    assert str(info.value).startswith(f"line {lineno}:"), str(info.value)
    assert message in str(info.value), str(info.value)


def test_line_numbers_count_comments_and_blank_lines():
    text = edit(3, ["", "  # a comment", LINES[2].replace("= linear(", "= dense(")])
    with pytest.raises(sg.GraphError, match=r"^line 5: unknown op 'dense'"):
        sg.parse(text)


@pytest.mark.parametrize(("text", "message"), [
    ("", r"line 1: expected 'graph NAME'"),
    ("   \n\n", r"line 1: expected 'graph NAME'"),
    ("%x = input(shape=(4,)) : f32[4]\nend\n", r"line 1: expected 'graph NAME'"),
    ("graph 1abc\nend\n", r"line 1: expected 'name'"),
    ("graph g h\nend\n", r"line 1: unexpected 'h'"),
    ("\n".join(LINES[:-1]) + "\n", r"line 6: expected 'end'"),
    (VALID + "extra\n", r"line 8: expected 'end'"),
])
def test_parse_rejects_malformed_framing(text, message):
    with pytest.raises(sg.GraphError, match=message):
        sg.parse(text)


@pytest.mark.parametrize("value", [None, b"graph g\nend\n", 42, "x" * (64 * 2**20 + 1)])
def test_parse_rejects_non_text_and_huge_text(value):
    with pytest.raises(sg.GraphError, match="parse: expected the text of a graph"):
        sg.parse(value)


def test_graph_without_outputs_parses_but_does_not_verify():
    g = sg.parse(edit(5, []).replace("  output mem = %lif.mem\n", ""))
    with pytest.raises(sg.GraphError, match="no output"):
        sg.verify(g)


def test_parameters_without_values_have_a_total_budget():
    """Each is allocated on parsing, so many large ones in a short text are refused up front."""
    nodes = [f"  %c{i} = scale(%x, factor=const<f32[10000,10000]>) : f32[4]" for i in range(5)]
    text = "\n".join([LINES[0], LINES[1], *nodes, "  output o = %c0", "end"])
    with pytest.raises(sg.GraphError, match=r"^line 5: parameters exceed \d+ elements in total"):
        sg.parse(text)
