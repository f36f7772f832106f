"""The one ORT session-options builder: its defaults are ONNX Runtime's own (the reference and the plain
backend ran with those before sharing it), and each setting reaches the options."""

from __future__ import annotations

import onnxruntime as ort

from rvmkit.runtime.ort_session import session_options


def test_defaults_are_onnx_runtimes_own_but_quiet():
    ours, default = session_options(), ort.SessionOptions()
    assert ours.graph_optimization_level == default.graph_optimization_level
    assert ours.intra_op_num_threads == default.intra_op_num_threads
    assert ours.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert ours.log_severity_level == 3


def test_each_setting_reaches_the_options():
    options = session_options(threads=2, spinning=False, opt_level="none")
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
