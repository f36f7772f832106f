"""What each backend is, read before its runtime is imported: the one table `load_backend` consults.

A backend's record says which module and class hold it, the model kinds it runs, the pip extra that
provides it, where it runs (devices), what it computes in (precisions, fp16) and how its session is
settled (threads). The records live here, not in the backend modules, because importing a backend
module imports its runtime (openvino, torch, tensorrt): a refusal must not need the runtime installed.
Modelled on rembg's session registry: front-ends name a backend; nothing else branches on the name.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackendInfo:
    """One backend's self-description."""

    name: str
    module: str
    cls: str
    #: model kinds it runs (`rvmkit.runtime.ModelSpec.kind`)
    accepts: tuple[str, ...]
    #: pip extra that installs its runtime (None: always installed)
    extra: str | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")
    #: one line for a device outside `devices`
    device_refusal: str = ""
    #: precisions it can compute in on the CPU (reduced ones gated by `rvmkit.runtime.precision`)
    precisions: tuple[str, ...] = ("fp32",)
    #: takes fp16=True (half precision on CUDA)
    fp16: bool = False
    #: a thread cap applies to its own session (threads=); False: it is process-wide, set only when asked
    session_threads: bool = True
    #: `rvmkit verify --backend` runs it
    verify: bool = False
    #: shown by `--backend` (False: internal, e.g. the ORT reference bench and verify compare with)
    public: bool = True
    #: one line when it is asked to run without a model file (None: the pretrained default is fine)
    needs_model: str | None = None
    #: `--backend` advice per refused model kind (default: the kind's own default backend)
    kind_hints: dict[str, str] = field(default_factory=dict)


REGISTRY: tuple[BackendInfo, ...] = (
    BackendInfo("onnxruntime", "rvmkit.runtime.onnxruntime", "OnnxRuntimeBackend", ("onnx", "onnx_baked"),
                precisions=("fp32", "bf16", "int8"), verify=True),
    BackendInfo("openvino", "rvmkit.runtime.openvino", "OpenVINOBackend", ("onnx", "onnx_baked"),
                extra="openvino", devices=("cpu",),
                device_refusal="backend openvino: runs on the CPU here; use --device cpu",
                precisions=("fp32", "bf16", "int8", "fp16"), verify=True),
    BackendInfo("torch", "rvmkit.runtime.torch", "TorchBackend", ("checkpoint", "onnx"), extra="export",
                fp16=True, session_threads=False),
    BackendInfo("tensorrt", "rvmkit.runtime.tensorrt", "TensorRTBackend", ("engine", "onnx_baked"),
                extra="tensorrt", devices=("cuda",),
                device_refusal="backend tensorrt: runs on an NVIDIA GPU only; add --device cuda",
                needs_model="backend tensorrt: needs --model, a TensorRT engine or a TRT-ready ONNX "
                            "(see `rvmkit export` and `rvmkit build-engine`)",
                kind_hints={"onnx": "onnxruntime, or make it TRT-ready with `rvmkit convert`"}),
    BackendInfo("reference", "rvmkit.runtime.ort_reference", "OrtReferenceBackend", ("onnx", "onnx_baked"),
                devices=("cpu",), device_refusal="backend reference: runs on the CPU",
                public=False),
)

_BY_NAME = {info.name: info for info in REGISTRY}

#: the names `--backend` offers
BACKENDS = tuple(info.name for info in REGISTRY if info.public)
#: the backends `rvmkit verify --backend` adds a runner on
VERIFY_BACKENDS = tuple(info.name for info in REGISTRY if info.verify)


def info(name: str) -> BackendInfo | None:
    """The record of backend `name`, or None for a name no backend has."""
    return _BY_NAME.get(name)


def takes_fp16(name: str) -> bool:
    """Whether backend `name` runs fp16 (half precision on CUDA); False for a name no backend has."""
    found = _BY_NAME.get(name)
    return found is not None and found.fp16
