"""`rvmkit bench`: prints a per-frame table for each variant and writes it as JSON; bad input is one line,
refused before any frame is timed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rvmkit import bench
from rvmkit.bench import check_options, parse_size_ratio
from rvmkit.cli import build_parser, main
from rvmkit.cli.bench import bench_options
from rvmkit.errors import RvmkitError


@pytest.fixture
def no_timing(monkeypatch):
    """Fails the test if anything is timed: bad input must be refused before the first frame."""
    def fail(*_args, **_kwargs):
        raise AssertionError("timed frames before refusing the input")

    monkeypatch.setattr(bench, "time_interleaved", fail)
    monkeypatch.setattr(bench, "rvmkit_e2e", fail)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("rvmkit: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bench_refuses_bad_sizes_and_frame_counts(capsys):
    assert parse_size_ratio("1920x1080@0.25") == (1920, 1080, 0.25)
    assert parse_size_ratio("640x480") == (640, 480, None)
    assert parse_size_ratio("640x480@auto") == (640, 480, None)
    assert main(["bench", "--sizes", "big", "--frames", "2"]) == 2
    assert "size 'big'" in capsys.readouterr().err
    assert main(["bench", "--frames", "0"]) == 2


@pytest.mark.parametrize(("size", "message"), [
    ("64x48@0", "downsample ratio 0: must be > 0 and <= 1"),
    ("64x48@nan", "downsample ratio nan: must be > 0 and <= 1"),
    ("64x48@2", "downsample ratio 2: must be > 0 and <= 1"),
    ("64x48@", "downsample ratio '': expected 'auto' or a number"),
    ("0x0@0.5", "size '0x0@0.5': width and height must be from 1 to 16384"),
    ("99999x99999@0.25", "width and height must be from 1 to 16384"),
    ("2x2@0.25", "downsample ratio 0.25 shrinks its 2x2 frames to nothing"),
])
def test_bench_refuses_bad_sizes_and_ratios_before_timing(size, message, no_timing, tmp_path, capsys):
    out = tmp_path / "bench.json"
    # the good size first: the bad one is still refused before anything is timed
    assert main(["bench", "--sizes", "64x48@0.5", size, "--frames", "1", "--json", str(out)]) == 2
    assert message in one_line_error(capsys) and not out.exists()


def _model_file(tmp_path, kind: str):
    if kind == "missing":
        return tmp_path / "missing.onnx"
    if kind == "directory":
        (tmp_path / "dir.onnx").mkdir()
        return tmp_path / "dir.onnx"
    data = {"empty": b"", "random": np.random.default_rng(0).bytes(4096),
            "checkpoint": b"PK\x03\x04" + bytes(64), "engine": bytes(64)}[kind]
    path = tmp_path / {"checkpoint": "model.pth", "engine": "model.engine"}.get(kind, "model.onnx")
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("kind", "extra", "message"), [
    ("missing", [], "no such model file"),
    ("empty", [], "model file is empty"),
    ("directory", [], "is a directory, expected a model file"),
    ("random", [], "not a valid ONNX model"),
    ("checkpoint", [], "a PyTorch checkpoint cannot run on the onnxruntime backend; use --backend torch"),
    ("checkpoint", ["--backend", "openvino"], "cannot run on the openvino backend; use --backend torch"),
    ("engine", [], "a TensorRT engine cannot run on the onnxruntime backend; use --backend tensorrt"),
    ("engine", ["--backend", "tensorrt"], "backend tensorrt: runs on an NVIDIA GPU only"),
])
def test_bench_model_is_checked_as_matte_checks_it(kind, extra, message, no_timing, tmp_path, capsys):
    model = _model_file(tmp_path, kind)
    for mode in ("model", "e2e"):
        assert main(["bench", "--model", str(model), "--sizes", "64x48@0.5", "--frames", "1",
                     "--mode", mode, *extra]) == 2
        assert message in one_line_error(capsys)


def test_bench_model_that_is_not_rvm_is_one_line(no_timing, tmp_path, capsys):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "other.onnx"))
    assert main(["bench", "--model", str(tmp_path / "other.onnx"), "--sizes", "64x48@0.5"]) == 2
    assert "not an RVM matting ONNX" in one_line_error(capsys)


def test_bench_baked_model_runs_at_its_ratio_and_refuses_another(baked_onnx, capsys):
    assert main(["bench", "--model", str(baked_onnx), "--sizes", "64x48@0.5", "--frames", "1"]) == 2
    assert "has downsample ratio 0.25 baked in; use 64x48@0.25 or 64x48" in one_line_error(capsys)
    args = build_parser().parse_args(["bench", "--model", str(baked_onnx)])
    _specs, sizes = check_options(bench_options(args))  # the default sizes take the baked ratio
    assert sizes == [(640, 480, 0.25), (1280, 720, 0.25), (1920, 1080, 0.25)]
    assert main(["bench", "--model", str(baked_onnx), "--sizes", "64x48", "--frames", "1"]) == 0
    table = capsys.readouterr().out
    assert "official ONNX (ORT)" in table and "onnxruntime (fast)" in table and " 0.25 " in table


def test_bench_runs_a_checkpoint_on_the_torch_backend(checkpoint, capsys):
    pytest.importorskip("torch")
    assert main(["bench", "--model", str(checkpoint), "--backend", "torch", "--sizes", "32x32@0.5",
                 "--frames", "1"]) == 0
    assert "torch (cpu)" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "message"), [
    (["--fp16"], "fp16 applies to --backend torch"),
    (["--fp16", "--backend", "openvino"], "fp16 applies to --backend torch"),
    (["--threads", "0"], "--threads 0: must be at least 1"),
    (["--threads", "-1"], "--threads -1: must be at least 1"),
])
def test_bench_refuses_fp16_without_torch_and_threads_below_one(flags, message, no_timing, capsys):
    assert main(["bench", "--sizes", "64x48@0.5", "--frames", "1", *flags]) == 2
    assert message in one_line_error(capsys)


def test_bench_fp16_applies_to_the_torch_backend_only():
    args = build_parser().parse_args(["bench", "--backend", "onnxruntime", "torch", "--fp16"])
    specs, _sizes = check_options(bench_options(args))  # fp16 is torch's: onnxruntime beside it is fine
    assert list(specs) == ["onnxruntime", "torch"]


def test_bench_leaves_out_the_fast_variant_for_a_model_it_cannot_take(monkeypatch, capsys):
    from rvmkit import runtime
    from rvmkit.graph.lowres import UnsupportedGraph

    real = runtime.load_backend

    def load_backend(*args, fast=None, **kwargs):
        if fast:
            raise UnsupportedGraph("RVM ONNX: the fast path takes float32 models only")
        return real(*args, fast=fast, **kwargs)

    monkeypatch.setattr(runtime, "load_backend", load_backend)
    assert main(["bench", "--sizes", "32x32@0.5", "--frames", "1"]) == 0
    captured = capsys.readouterr()
    assert "onnxruntime (plain)" in captured.out and "onnxruntime (fast)" not in captured.out
    assert "onnxruntime (fast) left out: RVM ONNX: the fast path takes float32 models only" in captured.err


def test_official_baseline_feeds_a_float16_model_float16_inputs(tmp_path, monkeypatch):
    import onnxruntime as ort

    names, outputs = ["src", "r1i", "r2i", "r3i", "r4i"], ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT16, None) for name in names]
    inputs.append(helper.make_tensor_value_info("downsample_ratio", TensorProto.FLOAT, [1]))
    nodes = [helper.make_node("Identity", [i], [o]) for i, o in zip(["src", *names], outputs) if o != "pha"]
    nodes.append(helper.make_node("Slice", ["src", "one_start", "one_end", "one_axis"], ["pha"]))  # 1 channel
    limits = [helper.make_tensor(name, TensorProto.INT64, [1], [value])
              for name, value in (("one_start", 0), ("one_end", 1), ("one_axis", 1))]
    graph = helper.make_graph(nodes, "identity", inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT16, None) for o in outputs],
                              initializer=limits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    feeds, run = [], ort.InferenceSession.run

    def recording_run(session, names, feed, *rest):
        feeds.append({name: value.dtype for name, value in feed.items()})
        return run(session, names, feed, *rest)

    monkeypatch.setattr(ort.InferenceSession, "run", recording_run)
    step = bench.official_stepper(tmp_path / "m.onnx", bench.synthetic_frames(8, 6, 2), 0.5)
    step(0)
    step(1)  # the returned (float16) state fed back
    assert len(feeds) == 2 and feeds[0] == feeds[1]
    assert feeds[1] == {**dict.fromkeys(names, np.float16), "downsample_ratio": np.float32}


def test_parse_size_errors_are_rvmkit_errors():
    with pytest.raises(RvmkitError, match="expected WxH or WxH@RATIO"):
        parse_size_ratio("64by48")


def test_composition_psnr_scores_a_faithful_render_high_and_the_raw_source_low(tmp_path, official_onnx):
    """The benchmark's quality measure: `rvmkit matte`'s own composition (PNG, lossless but for rounding)
    over the same green is close to the float reference; the unmatted source is far from it."""
    from conftest import real_clip
    from rvmkit.api import convert_video

    clip = real_clip(tmp_path / "milk.mp4", "milk", 6, size=(160, 120))
    render = tmp_path / "render"
    convert_video(str(clip), output_composition=str(render), output_type="png_sequence",
                  background=bench.GREEN, downsample_ratio=0.5, progress=False, backend="onnxruntime")
    faithful, raw = bench.composition_psnr(clip, [render, clip], official_onnx, 0.5)
    assert faithful > 40, faithful
    assert raw < 25, raw
