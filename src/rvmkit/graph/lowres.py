"""CPU fast-path rewrite of an RVM ONNX: the graph stops at low resolution.

The official graph spends a large share of a 1080p frame on full-resolution, memory-bound work: the
Resize of `src` down to `src_sm`, then the refiner's tail (two Resizes of its coefficients A, b back up
to full size, A * [src, mean(src)] + b, the fgr residual Add and two Clips). The *low-res* variant built
here takes `src_sm` (the already downsampled frame, float32 0..1) as its input and returns the refiner's
coefficients `coef_a`, `coef_b` ([1,4,h,w]) plus the recurrent states; `rvmkit.runtime.kernels` does the
downsample from the uint8 frame and the full-resolution tail (fused with compositing and the uint8
conversion) in one pass each, so no full-resolution float tensor ever exists. Every weight and every
low-resolution op is the original's, so outputs stay at fp32 parity.

The variant does not depend on the downsample ratio (only the removed first Resize used it), so one file
serves every ratio. `pad_channels` optionally zero-pads the input channels of the decoder's 3x3
convolutions (35, 59, 107, 171) to a multiple of 8 (a measured lever; see benchmarks/LEVERS.md).
`rvmkit.graph.blocked` then rewrites the refiner and the decoder's crops for ONNX Runtime's blocked
kernels (on by default; `blocked=False` keeps the model's own convolutions, as the floor counts them).
No torch here: the runtime builds and caches the variant on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from rvmkit.cache import cache_dir
from rvmkit.contract import RATIO_INPUT, STATE_OUTPUTS
from rvmkit.errors import RvmkitError
from rvmkit.fileio import write_atomically
from rvmkit.graph.blocked import fuse_refiner, skip_even_crops
from rvmkit.graph.edit import attribute, consumers, producers
from rvmkit.graph.io import load_onnx

SMALL_INPUT = "src_sm"
COEF_OUTPUTS = ("coef_a", "coef_b")
#: bump when the rewrite changes, so cached variants are rebuilt
REWRITE_VERSION = 4


class UnsupportedGraph(RvmkitError):
    """The graph is not one this rewrite knows (the plain path still runs it)."""


def _only(nodes: list[Any], op: str, what: str) -> Any:
    found = [node for node in nodes if node.op_type == op]
    if len(found) != 1:
        raise UnsupportedGraph(f"RVM ONNX: cannot find the {what} ({len(found)} {op} candidates); "
                          "not an RVM graph this rewrite knows")
    return found[0]


def find_tail(graph: Any) -> tuple[str, str, str]:
    """Names of (src_sm, A, b): the downsampled frame and the refiner's low-resolution coefficients.

    Follows the official tail backwards from the `pha` output: Clip <- Split <- Add(Mul(Resize(A), x),
    Resize(b)).
    """
    users, made_by = consumers(graph), producers(graph)
    src_sm = _only(users.get("src", []), "Resize", "downsample Resize of src").output[0]
    clip = made_by.get("pha")
    split = made_by.get(clip.input[0]) if clip is not None else None
    add = made_by.get(split.input[0]) if split is not None and split.op_type == "Split" else None
    if add is None or add.op_type != "Add":
        raise UnsupportedGraph("RVM ONNX: the refiner's A*x+b tail was not found before `pha`")
    parents = [made_by.get(name) for name in add.input]
    mul = next((node for node in parents if node is not None and node.op_type == "Mul"), None)
    resize_b = next((node for node in parents if node is not None and node.op_type == "Resize"), None)
    resize_a = next((made_by.get(name) for name in (mul.input if mul is not None else [])
                     if made_by.get(name) is not None and made_by[name].op_type == "Resize"), None)
    if resize_a is None or resize_b is None:
        raise UnsupportedGraph("RVM ONNX: the refiner's coefficient Resizes were not found")
    return src_sm, resize_a.input[0], resize_b.input[0]


def _prune(graph: Any, outputs: list[str]) -> None:
    """Drop nodes (and initializers) that no output needs."""
    made_by = producers(graph)
    needed: set[str] = set()
    stack = list(outputs)
    keep_ids: set[int] = set()
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = made_by.get(name)
        if node is not None and id(node) not in keep_ids:
            keep_ids.add(id(node))
            stack.extend(n for n in node.input if n)
    kept = [node for node in graph.node if id(node) in keep_ids]
    del graph.node[:]
    graph.node.extend(kept)
    inits = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def _pad_decoder_convs(graph: Any, multiple: int) -> int:
    """Zero-pad 3x3 group-1 conv inputs whose channel count is not a multiple of `multiple`."""
    from onnx import helper, numpy_helper

    inits = {init.name: init for init in graph.initializer}
    padded = 0
    nodes = list(graph.node)
    for node in nodes:
        if node.op_type != "Conv" or node.input[1] not in inits:
            continue
        group = attribute(node, "group", 1)
        weight = numpy_helper.to_array(inits[node.input[1]])
        cin = weight.shape[1]
        if group != 1 or weight.shape[2:] != (3, 3) or cin % multiple == 0 or cin <= 3:
            continue
        extra = multiple - cin % multiple
        new_weight = np.concatenate([weight, np.zeros((weight.shape[0], extra, 3, 3), weight.dtype)], axis=1)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(new_weight, node.input[1]))
        pads_name = f"{node.name or node.output[0]}_chanpad"
        graph.initializer.append(numpy_helper.from_array(
            np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64), pads_name))
        padded_name = f"{node.input[0]}_{pads_name}"
        pad = helper.make_node("Pad", [node.input[0], pads_name], [padded_name], mode="constant")
        graph.node.insert(list(graph.node).index(node), pad)
        node.input[0] = padded_name
        padded += 1
    return padded


def _channel_counts(model: Any) -> dict[str, int]:
    """Known channel (dim 1) sizes of the graph's tensors, from ONNX shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    counts = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) > 1 and dims[1].HasField("dim_value"):
            counts[value.name] = dims[1].dim_value
    return counts


def _split_concat_convs(model: Any, multiple: int = 8) -> int:
    """Conv(Concat([x, f, s])) with an odd channel total -> Conv(x) + Conv(f) + Conv(s).

    The decoder's first 3x3 convolutions take 35, 59, 107, 171 channels, which keeps them (and the
    Concat in front) off ONNX Runtime's blocked NCHWc kernels. Split along the weight's input channels,
    each part (128/80/40/32, 40/24/16, and the 3-channel image) runs blocked, the Adds run on the blocked
    tensors, and the Concat disappears. Same math, summed in another order. (Declaring the parts' shapes
    equal lets ORT fuse the Adds into the convolutions: measured, no faster, so not done.)
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    counts = _channel_counts(model)
    inits = {init.name: init for init in graph.initializer}
    made_by, users = producers(graph), consumers(graph)
    split = 0
    for node in list(graph.node):
        concat = made_by.get(node.input[0]) if node.op_type == "Conv" else None
        if concat is None or concat.op_type != "Concat" or len(users.get(concat.output[0], [])) != 1:
            continue
        if attribute(concat, "axis") != 1 or node.input[1] not in inits:
            continue
        if attribute(node, "group", 1) != 1:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        sizes = [counts.get(name) for name in concat.input]
        if weight.shape[1] % multiple == 0 or sizes.count(None) > 1:
            continue
        if None in sizes:
            sizes[sizes.index(None)] = weight.shape[1] - sum(size for size in sizes if size is not None)
        if sum(sizes) != weight.shape[1] or min(sizes) < 1:
            continue
        # smallest part first: each later conv adds the running sum (fused as NCHWc's sum input)
        order = sorted(range(len(sizes)), key=lambda i: sizes[i])
        offsets = np.cumsum([0, *sizes])
        total = None
        index = list(graph.node).index(node)
        for rank, i in enumerate(order):
            part = f"{node.output[0]}_part{i}"
            w_name = f"{node.input[1]}_part{i}"
            graph.initializer.append(numpy_helper.from_array(
                np.ascontiguousarray(weight[:, offsets[i]:offsets[i + 1]]), w_name))
            inputs = [concat.input[i], w_name] + (list(node.input[2:]) if rank == 0 else [])
            conv = helper.make_node("Conv", inputs, [part], name=f"{node.name}_part{i}")
            conv.attribute.extend(node.attribute)
            new_nodes = [conv]
            if total is not None:
                last = rank == len(order) - 1
                summed = node.output[0] if last else f"{node.output[0]}_sum{rank}"
                new_nodes.append(helper.make_node("Add", [part, total], [summed]))
                part = summed
            for offset, new in enumerate(new_nodes):
                graph.node.insert(index + offset, new)
            index += len(new_nodes)
            total = part
        graph.node.remove(node)
        graph.node.remove(concat)
        split += 1
    return split


def low_res_model(model: Any, *, pad_channels: int = 0, split_convs: bool = True,
                  blocked: bool = True) -> Any:
    """The low-res variant of an official or TRT-ready RVM ONNX (an onnx.ModelProto, edited in a copy).

    Inputs: src_sm [B,3,h,w] (the frame downsampled, 0..1), r1i..r4i. Outputs: coef_a, coef_b [B,4,h,w],
    r1o..r4o. fgr = clamp(A' * x + b' + x), pha = clamp(A'_3 * mean(x) + b'_3) with A', b' upsampled
    bilinearly (half-pixel) to the frame: see `rvmkit.runtime.kernels`. `blocked` applies the rewrites of
    `rvmkit.graph.blocked` (False: the graph whose convolutions are the model's, as the floor counts them).
    """
    import onnx
    from onnx import helper

    src = next((i for i in model.graph.input if i.name == "src"), None)
    if src is None or src.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UnsupportedGraph("RVM ONNX: the fast path takes float32 models only")
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    graph = edited.graph
    src_sm, coef_a, coef_b = find_tail(graph)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == src_sm:
                node.input[i] = SMALL_INPUT
    graph.node.extend([helper.make_node("Identity", [coef_a], [COEF_OUTPUTS[0]]),
                       helper.make_node("Identity", [coef_b], [COEF_OUTPUTS[1]])])
    outputs = {out.name: out for out in graph.output}
    dtype = outputs["fgr"].type.tensor_type.elem_type
    new_outputs = [helper.make_tensor_value_info(name, dtype, ["batch", 4, "height_sm", "width_sm"])
                   for name in COEF_OUTPUTS] + [outputs[name] for name in STATE_OUTPUTS]
    del graph.output[:]
    graph.output.extend(new_outputs)
    _prune(graph, [out.name for out in graph.output])
    src = next(i for i in graph.input if i.name == "src")
    small = helper.make_tensor_value_info(SMALL_INPUT, src.type.tensor_type.elem_type,
                                          ["batch", 3, "height_sm", "width_sm"])
    used = {name for node in graph.node for name in node.input}
    if "src" in used or RATIO_INPUT in used:
        raise UnsupportedGraph("RVM ONNX: full-resolution src is still used after the rewrite")
    kept = [inp for inp in graph.input if inp.name not in ("src", RATIO_INPUT)]
    del graph.input[:]
    graph.input.extend([small, *kept])
    del graph.value_info[:]  # shapes changed; ORT re-infers them
    if split_convs and _split_concat_convs(edited):
        _prune(graph, [out.name for out in graph.output])
    if blocked:
        if fuse_refiner(edited, COEF_OUTPUTS):
            _prune(graph, [out.name for out in graph.output])
        skip_even_crops(edited)
    if pad_channels:
        _pad_decoder_convs(graph, pad_channels)
    onnx.checker.check_model(edited)
    return edited


#: cached variants unused for this long are removed when another one is built
CACHE_MAX_AGE_S = 30 * 24 * 3600


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _prune_cache(cache: Path, stale_prefix: str, keep: Path) -> None:
    """Remove the earlier variants of the same source (re-exported, so a new mtime) and any variant
    unused for CACHE_MAX_AGE_S, so the cache holds about one file per model in use; the files named
    after a variant (ORT's optimised form, the per-size path choices) go with it."""
    now = time.time()
    for entry in (*cache.glob("*.lowres*.onnx"), *cache.glob("*.lowres*.choice.json")):
        if entry == keep:
            continue
        try:
            if entry.name.startswith(stale_prefix) or now - entry.stat().st_mtime > CACHE_MAX_AGE_S:
                entry.unlink()
        except OSError:
            pass  # another process's file, or already gone


def low_res_model_path(source: str | os.PathLike, *, pad_channels: int = 0, split_convs: bool = True,
                       blocked: bool = True, cache: str | os.PathLike | None = None) -> Path:
    """Build (once) and return the cached low-res variant of the ONNX at `source`.

    Cached in `cache` (default: the rvmkit weights cache), keyed by the source file and the options,
    written atomically, so concurrent runs and interrupted builds never leave a broken file.
    """
    return cast(Path, _cached_low_res_model(Path(source), (pad_channels, split_convs, blocked), cache,
                                            must_cache=True))


def low_res_model_for_session(source: str | os.PathLike, *, pad_channels: int = 0, split_convs: bool = True,
                              blocked: bool = True, rebuild: bool = False) -> Path | bytes:
    """The cached low-res variant's path, or, when the cache cannot be written (read-only, full disk, a
    file in the way), the serialized model itself: onnxruntime loads either, so the fast path then runs
    uncached (rebuilt each run) rather than failing the run. `rebuild` replaces a cached file."""
    return _cached_low_res_model(Path(source), (pad_channels, split_convs, blocked), None, must_cache=False,
                                 rebuild=rebuild)


def _cached_low_res_model(source: Path, options: tuple[int, bool, bool], cache: str | os.PathLike | None,
                          must_cache: bool, rebuild: bool = False) -> Path | bytes:
    if cache is None:
        cache = cache_dir() / "fast"
    pad_channels, split_convs, blocked = options
    pad = ((f"_pad{pad_channels}" if pad_channels else "") + ("" if split_convs else "_nosplit")
           + ("" if blocked else "_unblocked"))
    stat = source.stat()
    prefix = f"{source.stem}.lowres{pad}.{_digest(str(source.resolve()))}."
    target = Path(cache) / f"{prefix}{_digest(f'{stat.st_size}|{stat.st_mtime_ns}|v{REWRITE_VERSION}')}.onnx"
    if target.is_file() and not rebuild:
        with contextlib.suppress(OSError):
            os.utime(target)  # last used: what the age limit counts from
        return target
    data = low_res_model(load_onnx(source), pad_channels=pad_channels, split_convs=split_convs,
                         blocked=blocked).SerializeToString()
    try:
        write_atomically(target, lambda tmp: tmp.write_bytes(data))
    except RvmkitError:
        if must_cache:
            raise
        return data
    _prune_cache(Path(cache), prefix, target)
    return target



def low_res_stages_for_session(whole: Path | bytes, *, rebuild: bool = False
                               ) -> tuple[Path | bytes, Path | bytes]:
    """The low-res graph `whole` (a cached variant's path, or the serialized model) cut in two stages
    (`rvmkit.graph.split`): cached beside the variant (and removed with it), or serialized in memory
    where the variant itself is or the cache cannot be written."""
    from rvmkit.graph.split import CUT_VERSION, split_stages  # onnx loads only where a cut is made

    if isinstance(whole, bytes):
        first, second = split_stages(whole)
        return first.SerializeToString(), second.SerializeToString()
    paths = tuple(whole.with_name(f"{whole.stem}.cut{CUT_VERSION}.stage{n}.onnx") for n in (1, 2))
    if rebuild or not all(path.is_file() for path in paths):
        parts = [part.SerializeToString() for part in split_stages(whole)]
        try:
            for path, data in zip(paths, parts, strict=True):
                write_atomically(path, lambda tmp, data=data: tmp.write_bytes(data))
        except RvmkitError:
            return parts[0], parts[1]
    for path in paths:
        with contextlib.suppress(OSError):
            os.utime(path)  # last used: what the cache's age limit counts from
    return paths[0], paths[1]
