"""Parameters under another ``state_dict`` key than their module's: a traced model that keeps two
nodes' parameters in one module (Norse's ``LIFRecurrentCell`` holds ``input_weights``, the IR's
``<cell>_input`` linear, and ``recurrent_weights``, the neuron's ``recurrent.weight``). The graph's
``module_paths`` names them (``"<node>.<param>": "<model key>"``); the compiled net renames its keys
on ``state_dict()`` and back on ``load_state_dict()``, so both directions take the model's keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn


def key_map(paths: Mapping[str, str]) -> dict[str, str]:
    """The net's own ``state_dict`` key -> the model's, from ``module_paths``' ``"<node>.<param>"`` entries."""
    out = {}
    for key, public in paths.items():
        node, _, param = key.partition(".")
        if param:
            out[f"{paths.get(node, node)}.{param}"] = public
    return out


def install(module: nn.Module, mapping: dict[str, str]) -> None:
    """Rename ``module``'s ``state_dict`` keys by ``mapping`` (and back when loading)."""
    module._state_keys = mapping
    module._register_state_dict_hook(_to_model_keys)
    module.register_load_state_dict_pre_hook(_to_own_keys)


def _to_model_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for own, public in module._state_keys.items():
        if prefix + own in state_dict:
            state_dict[prefix + public] = state_dict.pop(prefix + own)


def _to_own_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    for own, public in module._state_keys.items():
        if prefix + public in state_dict:
            state_dict[prefix + own] = state_dict.pop(prefix + public)
