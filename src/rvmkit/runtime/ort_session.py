"""The one builder of ONNX Runtime session options, for every ORT session rvmkit opens (the plain and
fast backends, and the reference that `verify` and `bench` compare with)."""

from __future__ import annotations

import onnxruntime as ort

_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def session_options(threads: int | None = None, spinning: bool = True,
                    opt_level: str = "all") -> ort.SessionOptions:
    """ORT options: every graph optimisation (ORT's default), warnings off, `threads` intra-op threads
    (None: all cores). `spinning=False` lets decode/encode threads have the cores while ORT's workers
    wait (the fast path in the end-to-end pipeline); True (ORT's default) is a little faster for
    inference alone."""
    options = ort.SessionOptions()
    options.graph_optimization_level = _LEVELS[opt_level]
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options
