"""Parameters under another ``state_dict`` key than their module's: a traced model that keeps two
nodes' parameters in one module (Norse's ``LIFRecurrentCell`` holds ``input_weights``, the IR's
``<cell>_input`` linear, and ``recurrent_weights``, the neuron's ``recurrent.weight``). The graph's
``module_paths`` names them (``"<node>.<param>": "<model key>"``); the compiled net renames its keys
on ``state_dict()`` and back on ``load_state_dict()``, so both directions take the model's keys. A one-to-one
recurrence ``V`` (the IR's vector) under a model's matrix key (snnTorch's diagonal ``LeakyParallel`` keeps
it as ``rnn.weight_hh_l0``) is that matrix's diagonal: saved as the diagonal matrix, loaded as its diagonal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from snngraph.ir.errors import GraphError


def key_map(paths: Mapping[str, str]) -> dict[str, str]:
    """The net's own ``state_dict`` key -> the model's, from ``module_paths``' ``"<node>.<param>"`` entries."""
    out = {}
    for key, public in paths.items():
        node, _, param = key.partition(".")
        if param:
            out[f"{paths.get(node, node)}.{param}"] = public
    return out


def install(module: nn.Module, mapping: dict[str, str]) -> None:
    """Rename ``module``'s ``state_dict`` keys by ``mapping`` (and back when loading); entries for keys
    ``module`` does not have (a dense or a diagonal recurrence, whichever the node is not) are dropped."""
    own_keys = set(module.state_dict())
    module._state_keys = {own: public for own, public in mapping.items() if own in own_keys}
    module._register_state_dict_hook(_to_model_keys)
    module.register_load_state_dict_pre_hook(_to_own_keys)


def _diagonal(own: str) -> bool:
    return own.rpartition(".")[2] == "V"


def _to_model_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for own, public in module._state_keys.items():
        if prefix + own in state_dict:
            value = state_dict.pop(prefix + own)
            state_dict[prefix + public] = torch.diag_embed(value) if _diagonal(own) else value


def _to_own_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    for own, public in module._state_keys.items():
        if prefix + public in state_dict:
            value = state_dict.pop(prefix + public)
            state_dict[prefix + own] = _diagonal_of(value, prefix + public) if _diagonal(own) else value


def _diagonal_of(matrix: Any, key: str) -> Tensor:
    """The diagonal of a square matrix whose other entries are zero (the node holds nothing else)."""
    if not isinstance(matrix, Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise GraphError(f"state_dict key '{key}': expected a square diagonal matrix, got "
                         f"{tuple(getattr(matrix, 'shape', ())) or type(matrix).__name__}")
    diagonal = torch.diagonal(matrix)
    if bool((matrix - torch.diag_embed(diagonal)).any()):
        raise GraphError(f"state_dict key '{key}': the net's recurrence is one-to-one (a diagonal matrix), "
                         "the given matrix has off-diagonal entries")
    return diagonal.clone()
