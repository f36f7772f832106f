"""`--precision fp32|bf16|int8`: exact fp32 by default; a reduced precision only where it is offered.

A reduced mode is offered only if its configuration passed the accuracy gate of issue 15 on real clips
(99.9% of alpha pixels within 2/255 of fp32 and a mean alpha error <= 0.2/255), and then only on a CPU
with the instructions that make it fast (without them it is no faster than fp32). `benchmarks/precision.py`
measures the gate; the results are in benchmarks/LEVERS.md, "Reduced precision (issue 15)":
- mixed int8 (the rest fp32) passed only where it lowers a sliver of the convolutions (the backbone's
  last 1x1 conv: 1.9% of the MACs) at 640x480, and failed there too at 1280x720;
- mixed bf16 (emulated: conv inputs and weights rounded to bf16) passed at 640x480 with 69% of the MACs
  lowered, but failed at 1280x720 (held-out milk) in every configuration lowering more than 2%; its
  real form (OpenVINO bf16) needs avx512_bf16/amx_bf16, which no machine of this project had.
So no reduced mode is offered yet: `NOT_OFFERED` says why, and the check refuses the mode in one line
before any model is loaded.
"""

from __future__ import annotations

from rvmkit.errors import RvmkitError
from rvmkit.runtime import cpu

PRECISIONS = ("fp32", "bf16", "int8")
#: modes `rvmkit verify --precision` can measure (on OpenVINO) that `matte` does not list
MEASURED_ONLY = ("fp16",)
#: a mode needs any one of these CPU flags (as /proc/cpuinfo names them)
INSTRUCTIONS = {
    "bf16": ("avx512_bf16", "amx_bf16"),
    "int8": ("avx512_vnni", "avx_vnni", "amx_int8"),
    "fp16": ("avx512_fp16", "amx_fp16"),
}
#: the backends (CPU only) a reduced mode would run on
BACKENDS = ("onnxruntime", "openvino")
#: reduced modes not offered, and why (benchmarks/LEVERS.md, "Reduced precision (issue 15)")
NOT_OFFERED = {
    "int8": "mixed int8 failed the accuracy gate on real clips in every configuration that lowers more "
            "than 2% of the convolutions",
    "bf16": "mixed bf16 (emulated) failed the accuracy gate on real clips at 1280x720 in every "
            "configuration that lowers more than 2% of the convolutions",
}
def missing_instructions(precision: str, flags: set[str] | None) -> tuple[str, ...]:
    """The instructions `precision` would need and this CPU lacks (all of them when flags are unknown)."""
    needed = INSTRUCTIONS.get(precision, ())
    if not needed or (flags is not None and flags.intersection(needed)):
        return ()
    return needed


def check_precision(precision: str, backend: str, device: str, *, offered_only: bool = True) -> None:
    """Refuse, in one line, a precision that cannot run as asked; fp32 always can.

    `offered_only=False` skips the gate (for tests and experiments that measure a mode's error); the
    backend, device and CPU checks still apply.
    """
    if precision == "fp32":
        return
    if precision not in PRECISIONS and (offered_only or precision not in MEASURED_ONLY):
        raise RvmkitError(f"--precision {precision}: unknown; choose one of {', '.join(PRECISIONS)}")
    if offered_only and precision in NOT_OFFERED:
        raise RvmkitError(f"--precision {precision}: not offered: {NOT_OFFERED[precision]} (see "
                          "benchmarks/LEVERS.md, 'Reduced precision'); use the default fp32")
    if device != "cpu" or backend not in BACKENDS:
        raise RvmkitError(f"--precision {precision}: CPU only, on --backend onnxruntime or openvino "
                          f"(asked: --backend {backend} --device {device})")
    flags = cpu.cpu_flags()
    missing = missing_instructions(precision, flags)
    if missing:
        where = "this CPU lacks" if flags is not None else "cannot read this CPU's flags to find"
        raise RvmkitError(f"--precision {precision}: {where} the instructions that make it pay "
                          f"({' or '.join(missing)}); use the default fp32")
