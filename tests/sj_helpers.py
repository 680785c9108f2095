"""Shared helpers of the SpikingJelly tests: the zoo import without torchvision, and stepping a model."""

from __future__ import annotations

import importlib
import sys
import types

import torch


def zoo(name: str) -> types.ModuleType:
    """``spikingjelly.activation_based.model.<name>``. Its modules import torchvision's
    ``load_state_dict_from_url`` for pretrained weights only; torchvision cannot be installed beside
    the CPU torch here, so a stand-in module providing that one name is put in its place (never
    used: the tests build models with ``pretrained=False``)."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torchvision")
        utils = types.ModuleType("torchvision._internally_replaced_utils")

        def load_state_dict_from_url(*args, **kwargs):
            raise RuntimeError("torchvision stand-in: pretrained weights cannot be downloaded in the tests")

        utils.load_state_dict_from_url = load_state_dict_from_url
        stub._internally_replaced_utils = utils
        sys.modules["torchvision"] = stub
        sys.modules["torchvision._internally_replaced_utils"] = utils
    return importlib.import_module(f"spikingjelly.activation_based.model.{name}")


def step_sj(model: torch.nn.Module, x_seq: torch.Tensor, multi_step: bool = False) -> torch.Tensor:
    """SpikingJelly's own run of ``model`` over ``(T, B, ...)`` from a reset state."""
    from spikingjelly.activation_based import functional

    functional.reset_net(model)
    if multi_step:
        return model(x_seq)
    return torch.stack([model(x) for x in x_seq])


def only(out):
    """The single output of a compiled net (a dict of one entry) or the tensor itself."""
    if isinstance(out, dict):
        assert len(out) == 1, list(out)
        return next(iter(out.values()))
    return out
