"""What the CPU is, for choices that depend on it: its instruction flags and a short signature."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str) -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags() -> set[str] | None:
    """The CPU's instruction flags, or None where they cannot be established (not Linux, no cpuinfo)."""
    flags = _cpuinfo_field("flags")
    return set(flags.split()) if flags is not None else None


@cache
def cpu_signature() -> str:
    """12 hex digits naming this CPU model, its flags and core count: files tuned to a CPU (ONNX Runtime's
    optimised graphs, whose blocked layouts depend on the instruction set) are kept per signature."""
    text = "|".join([_cpuinfo_field("model name") or platform.processor() or platform.machine(),
                     " ".join(sorted(cpu_flags() or ())), str(os.cpu_count())])
    return hashlib.sha256(text.encode()).hexdigest()[:12]
