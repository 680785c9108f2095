"""Every example in examples/ runs in its --quick form (examples/trace_snntorch.py is tested by
tests/test_fx_example.py, examples/trace_spikingjelly.py by tests/test_sj_example.py, the 2-process DDP
run by tests/test_ddp.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import snngraph as sg

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_every_example_is_tested():
    tested = {"train_builder", "conv_event_frames", "recurrent_temporal", "streaming_onnx", "custom_pass",
              "train_ddp", "trace_snntorch", "user_neuron_model", "trace_spikingjelly"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} <= tested


def test_train_builder(capsys, tmp_path):
    result = _load("train_builder").main(["--quick", "--out", str(tmp_path)])
    assert result["path"].parent == tmp_path
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["streamed_equal"] and result["reload_equal"]
    assert sg.load(result["path"]).name == "digits_synaptic"
    assert "graph digits_synaptic" in capsys.readouterr().out  # printed the text IR


def test_conv_event_frames():
    module = _load("conv_event_frames")
    result = module.main(["--quick", "--num-steps", "6"])
    assert result["frames_shape"] == (6, 32, 2, 32, 32)
    assert result["output_shape"] == (6, 32, 4)
    events = module.moving_bar(0, __import__("numpy").random.default_rng(0))
    assert events.dtype.names == ("x", "y", "t", "p") and (events["x"] < 32).all() and (events["y"] < 32).all()
    assert (events["t"][1:] >= events["t"][:-1]).all()


@pytest.mark.parametrize("model", ["rleaky", "feedback"])
def test_recurrent_temporal(model):
    module = _load("recurrent_temporal")
    result = module.main(["--quick", "--model", model, "--num-steps", "20"])
    assert result["model"] == model and 0.0 <= result["accuracy"] <= 1.0
    xs, ys = module.make_batch(50, 20, torch.Generator().manual_seed(0))
    first_a = xs[:, :, 0].argmax(0)
    first_b = xs[:, :, 1].argmax(0)
    assert torch.equal(ys, (first_b < first_a).long()) and bool((first_a != first_b).all())


def test_streaming_onnx(tmp_path):
    result = _load("streaming_onnx").main(["--quick", "--out", str(tmp_path)])
    assert result["onnx"].parent == tmp_path
    assert result["spikes_equal"]
    assert 1.0 <= result["mean_steps"] <= 25.0
    assert result["onnx"].is_file()


def test_user_neuron_model():
    """docs/neuron-models.md's example: declared once, trained, streamed, saved and exported."""
    first = _load("user_neuron_model")
    result = first.main(["--quick", "--steps", "12"])
    assert result["streamed_equal"] and result["reload_equal"] and result["onnx_spikes_equal"]
    assert 0.0 <= result["accuracy"] <= 1.0
    again = _load("user_neuron_model")  # the same declaration run again returns the registered model
    assert again.adaptive_if is first.adaptive_if is sg.neuron_models()["adaptive_if"]


def test_custom_pass():
    module = _load("custom_pass")
    result = module.main(["--quick"])
    assert result["tests"] == 6
    assert result["delays"] == {"d3": 4, "e1": 1, "e2": 2}
    assert module.merge_delays.name == "merge_delays"


def test_example_runs_as_a_script(tmp_path):
    """``python examples/train_ddp.py --quick`` without torchrun: a process group of one (gloo)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    done = subprocess.run([sys.executable, str(EXAMPLES / "train_ddp.py"), "--quick", "--out", str(tmp_path / "m.sg")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 process(es)" in done.stdout and (tmp_path / "m.sg").is_file()


def _python_blocks(path: Path) -> list[str]:
    text = path.read_text()
    return [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]


def test_readme_code_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the quick start writes mlp.onnx
    blocks = _python_blocks(EXAMPLES.parent / "README.md")
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "mlp.onnx").is_file()


def test_neuron_models_doc_code_runs():
    """docs/neuron-models.md's code, in order in one namespace: declare, build, compile."""
    namespace: dict = {"__name__": "neuron_models_doc"}
    blocks = _python_blocks(EXAMPLES.parent / "docs" / "neuron-models.md")
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/neuron-models.md", "exec"), namespace)
    assert namespace["net"](torch.rand(4, 2, 8))["a"].shape == (4, 2, 32)


def test_writing_a_pass_doc_code_runs():
    """The doc's code, run in order in one namespace, and every test it defines passes."""
    namespace: dict = {"__name__": "writing_a_pass"}
    for block in _python_blocks(EXAMPLES.parent / "docs" / "writing-a-pass.md"):
        exec(compile(block, "docs/writing-a-pass.md", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    assert len(tests) == 5
    for test in tests:
        test()
    assert namespace["lowered"].nodes["d3"].steps == 4
