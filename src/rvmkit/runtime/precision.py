"""`--precision fp32|bf16|int8`: exact fp32 by default; a reduced precision only where it is offered.

A reduced mode is offered only if it passes both gates of issue 22 (item 6), on a CPU with the instructions
that make it fast: every alpha metric of RVM's evaluation (MAD, MSE, Grad, dtSSD against fp32, over 30+ real
frames with the state carried: `rvmkit verify --precision`) within 10% of RVM MobileNetV3's own published
error, and the whole `rvmkit matte` process at least 1.3x faster than fp32. Measured on an Intel Xeon with
AMX (`benchmarks/amx_bf16.py`; benchmarks/LEVERS.md, "Reduced precision on AMX (issue 22)"):
- bf16 (OpenVINO on AMX, the fast path's low-res graph): model 1.5x faster at 1080p, but dtSSD 0.16-0.19
  against a budget of 0.136 (the frame-to-frame noise of bf16 rounding), and the whole process only ~1.2x
  faster (its CPU seconds; the model is about half the process's work); the whole graph in bf16 is worse
  on both counts;
- fp16 (OpenVINO on AVX512_FP16, measured only, not a `matte` mode): within every budget, but slower than
  fp32 (no AMX-FP16 on that CPU);
- int8 (issue 15): mixed int8 failed issue 15's pixel gate on real clips in every configuration lowering more
  than 2% of the convolutions (`benchmarks/precision.py`).
So no reduced mode is offered: `NOT_OFFERED` says why, and the check refuses the mode in one line before
any model is loaded.
"""

from __future__ import annotations

from rvmkit.errors import RvmkitError
from rvmkit.runtime import cpu
from rvmkit.runtime.registry import REGISTRY

PRECISIONS = ("fp32", "bf16", "int8")
#: modes `rvmkit verify --precision` can measure (on OpenVINO) that `matte` does not list
MEASURED_ONLY = ("fp16",)
#: a mode needs any one of these CPU flags (as /proc/cpuinfo names them)
INSTRUCTIONS = {
    "bf16": ("avx512_bf16", "amx_bf16"),
    "int8": ("avx512_vnni", "avx_vnni", "amx_int8"),
    "fp16": ("avx512_fp16", "amx_fp16"),
}
#: the backends (CPU only) a reduced mode would run on: those whose record lists one
BACKENDS = tuple(info.name for info in REGISTRY if set(info.precisions) - {"fp32"})
#: reduced modes not offered, and why (benchmarks/LEVERS.md, "Reduced precision (issue 15)")
NOT_OFFERED = {
    "int8": "mixed int8 failed the accuracy gate on real clips in every configuration that lowers more "
            "than 2% of the convolutions",
    "bf16": "bf16 (OpenVINO, AMX) fails the accuracy gate on real clips (alpha dtSSD against fp32 above 10% "
            "of RVM's own error) and makes the whole run only ~1.2x faster (1.3x needed)",
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
