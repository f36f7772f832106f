"""Import the official pretrained weights into a PyTorch checkpoint, and load checkpoints.

The official ONNX (fetched and verified by `rvmkit.cache`) has its weights imported into an
official-layout state_dict saved as `rvm_mobilenetv3.pth`. Importing ONNX weights and loading `.pth`
checkpoints need torch (the `export` extra); the cache names are re-exported here for callers.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvmkit.cache import (  # noqa: F401  (re-exported: callers use weights.cache_dir, weights.CACHE_ENV...)
    CACHE_ENV,
    ONNX_NAME,
    ONNX_SHA256,
    cache_dir,
    official_onnx_path,
    require_writable_cache,
    sha256_file,
)
from rvmkit.contract import is_torch_model
from rvmkit.errors import RvmkitError, describe_path, first_line, require_readable_file
from rvmkit.fileio import write_atomically as _write_atomically
from rvmkit.graph.io import load_onnx

if TYPE_CHECKING:
    import torch

    from rvmkit.model import MattingNetwork

PTH_NAME = "rvm_mobilenetv3.pth"


def _digest_path(pth: Path) -> Path:
    return pth.with_name(pth.name + ".sha256")


def fetch_pretrained(kind: str) -> Path:
    """The pretrained default a model kind runs (`rvmkit.runtime.ModelSpec.kind`): the imported checkpoint
    for 'checkpoint', else the official ONNX; fetched once by a server or a batch before its jobs, not by
    every job at the same time."""
    return default_checkpoint_path() if kind == "checkpoint" else official_onnx_path()


def default_checkpoint_path(fetch: bool = True) -> Path:
    """Path of the imported `rvm_mobilenetv3.pth` (verified against its recorded sha256)."""
    pth = cache_dir() / PTH_NAME
    digest = _digest_path(pth)
    if pth.exists() and digest.exists() and digest.read_text().strip() == sha256_file(pth):
        return pth
    onnx_path = official_onnx_path(fetch=fetch)
    require_writable_cache(pth)
    import torch

    state = import_onnx_state_dict(onnx_path)
    buffer = io.BytesIO()  # via a buffer: the zip's inner names then do not depend on the temp name
    torch.save(state, buffer)
    _write_atomically(pth, lambda path: path.write_bytes(buffer.getvalue()))
    _write_atomically(digest, lambda path: path.write_text(sha256_file(pth) + "\n"))
    return pth


def fetch() -> list[Path]:
    """Make sure the official ONNX and the imported .pth are cached; return their paths."""
    return [official_onnx_path(), default_checkpoint_path()]


# ---------------------------------------------------------------------------------------------
# ONNX -> official state_dict


def _conv_execution_order(model: MattingNetwork) -> list[str]:
    """Names of the model's Conv2d modules in first-call order (the order the ONNX graph has)."""
    import torch

    order: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            hooks.append(module.register_forward_hook(
                lambda _m, _i, _o, name=name: order.append(name) if name not in order else None))
    with torch.no_grad():
        model.forward_frame(torch.rand(1, 3, 64, 64), None, None, None, None, 0.5)
    for hook in hooks:
        hook.remove()
    return order


def _batchnorm_after(model: MattingNetwork) -> dict[str, str]:
    """conv name -> name of the BatchNorm2d that directly follows it inside a Sequential."""
    import torch

    pairs: dict[str, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
                if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                    prefix = f"{name}." if name else ""
                    pairs[prefix + conv_name] = prefix + bn_name
    return pairs


def import_onnx_state_dict(onnx_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Official-layout MobileNetV3 state_dict from an official RVM ONNX (BatchNorm folded).

    Each folded conv becomes its weight plus an identity BatchNorm that carries the bias
    (running_mean 0, running_var 1 - eps, weight 1), which computes exactly conv + bias.
    `project_seg` is absent from the ONNX and is saved as zeros (see `has_segmentation_head`).
    """
    import torch
    from onnx import numpy_helper

    from rvmkit.model import MattingNetwork

    graph = load_onnx(onnx_path).graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    onnx_convs: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for node in graph.node:
        if node.op_type == "Conv" and node.input[1] not in seen:
            seen.add(node.input[1])
            onnx_convs.append((node.input[1], node.input[2] if len(node.input) > 2 else None))

    model = MattingNetwork("mobilenetv3").eval()
    order = _conv_execution_order(model)
    if len(order) != len(onnx_convs):
        raise RvmkitError(f"{describe_path(onnx_path)}: {len(onnx_convs)} convolutions, expected "
                          f"{len(order)}; not an official RVM MobileNetV3 ONNX")
    bn_after = _batchnorm_after(model)
    state = model.state_dict()
    modules = dict(model.named_modules())
    for name, (weight_name, bias_name) in zip(order, onnx_convs, strict=True):
        weight = torch.from_numpy(initializers[weight_name].copy())
        if weight.shape != state[f"{name}.weight"].shape:
            raise RvmkitError(f"{describe_path(onnx_path)}: conv {weight_name} has shape "
                              f"{tuple(weight.shape)}, expected {tuple(state[name + '.weight'].shape)} "
                              f"for {name}")
        state[f"{name}.weight"] = weight
        bias = torch.from_numpy(initializers[bias_name].copy()) if bias_name else None
        if name in bn_after:
            bn = bn_after[name]
            eps = modules[bn].eps
            channels = weight.shape[0]
            state[f"{bn}.weight"] = torch.ones(channels)
            state[f"{bn}.bias"] = bias if bias is not None else torch.zeros(channels)
            state[f"{bn}.running_mean"] = torch.zeros(channels)
            state[f"{bn}.running_var"] = torch.full((channels,), 1.0 - eps)
        elif bias is not None:
            state[f"{name}.bias"] = bias
    state["project_seg.conv.weight"] = torch.zeros_like(state["project_seg.conv.weight"])
    state["project_seg.conv.bias"] = torch.zeros_like(state["project_seg.conv.bias"])
    return state


# ---------------------------------------------------------------------------------------------
# Loading checkpoints


def has_segmentation_head(state: dict[str, Any]) -> bool:
    """False for checkpoints imported from ONNX, whose project_seg is all zeros."""
    weight = state.get("project_seg.conv.weight")
    return weight is not None and bool(weight.abs().sum() > 0)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict from an official `.pth` (weights_only, never executes code) or RVM `.onnx`."""
    path = require_readable_file(path, "checkpoint")
    if path.lower().endswith(".onnx"):
        return import_onnx_state_dict(path)
    import torch

    try:
        with warnings.catch_warnings():  # garbage input makes torch warn about odd pickle protocols
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = [line for line in str(exc).splitlines() if line.strip()]
        first = next((line for line in detail if line.startswith("Unsupported")), "unreadable pickle")
        if "Unsupported global" in str(exc):
            raise RvmkitError(f"{describe_path(path)}: checkpoint needs code to load (refused, never "
                              "executed); only plain tensor state_dicts are accepted") from None
        raise RvmkitError(f"{describe_path(path)}: not a PyTorch checkpoint ({first})") from None
    except Exception as exc:  # torch's unpickler raises anything (IndexError, KeyError...) on garbage
        raise RvmkitError(f"{describe_path(path)}: not a PyTorch checkpoint ({first_line(exc)})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RvmkitError(f"{describe_path(path)}: not a state_dict of tensors")
    return state


def detect_variant(state: dict[str, Any]) -> str | None:
    if "backbone.features.0.0.weight" in state:
        return "mobilenetv3"
    if "backbone.conv1.weight" in state:
        return "resnet50"
    return None


IN_MEMORY = "in-memory model"


def load_model(checkpoint: str | os.PathLike | torch.nn.Module | None = None, variant: str | None = None,
               refiner: str = "deep_guided_filter") -> MattingNetwork:
    """An eval-mode MattingNetwork with `checkpoint` loaded strictly (None = cached default).

    `checkpoint` may also be a model object with the official layout (the official repository's
    MattingNetwork, or ours): its state_dict is copied into a fresh network. `variant` None means:
    whatever the checkpoint is. A checkpoint of the other variant, or a partial one, is an
    RvmkitError naming the file.
    """
    from rvmkit.model import MattingNetwork

    if is_torch_model(checkpoint):
        path = Path(IN_MEMORY)
        state = {key: value.detach().float().cpu() for key, value in checkpoint.state_dict().items()}
    else:
        path = default_checkpoint_path() if checkpoint is None else Path(checkpoint)
        state = read_state_dict(path)
    found = detect_variant(state)
    if found is None:
        raise RvmkitError(f"{describe_path(path)}: not an RVM checkpoint (no backbone weights found)")
    if variant is not None and found != variant:
        raise RvmkitError(f"{describe_path(path)}: checkpoint is for variant {found}, not {variant}")
    model = MattingNetwork(found, refiner)
    if refiner == "fast_guided_filter":  # parameter-free refiner: the deep refiner's keys are unused
        state = {k: v for k, v in state.items() if not k.startswith("refiner.")}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        detail = f"{len(missing)} missing keys (e.g. {missing[0]})" if missing else \
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})"
        raise RvmkitError(f"{describe_path(path)}: incomplete or foreign {found} checkpoint: {detail}")
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        raise RvmkitError(f"{describe_path(path)}: tensor {wrong[0]} has shape "
                          f"{tuple(state[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}")
    model.load_state_dict(state, strict=True)
    model.has_segmentation = has_segmentation_head(state)
    return model.eval()
