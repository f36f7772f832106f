"""ONNX Runtime TensorRT/CUDA execution-provider options (`rvmkit.runtime.ort_providers`), built from the
same profile as `rvmkit build-engine`. Only the option strings are checked: running them needs a GPU."""

from __future__ import annotations

from rvmkit.runtime.ort_providers import providers, tensorrt_provider_options
from rvmkit.trt.profile import compute_profile, format_profile

SIZES = {"min": (160, 120), "opt": (320, 240), "max": (645, 479)}


def test_ort_provider_options_use_the_same_profile(trt_ready, tmp_path):
    profile = compute_profile(trt_ready, SIZES["min"], SIZES["opt"], SIZES["max"])
    options = tensorrt_provider_options(profile, fp16=True, cache_dir=tmp_path)
    assert options["trt_profile_opt_shapes"] == format_profile(profile, "trtexec").split()[3].split("=", 1)[1]
    assert options["trt_fp16_enable"] == "True" and options["trt_engine_cache_path"] == str(tmp_path)
    names = [p if isinstance(p, str) else p[0] for p in providers(profile)]
    assert names == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
