"""`rvmkit verify` (`rvmkit.cli.verify`): the report it prints, its exit status (0 pass, 1 above tolerance,
2 refused), and what it refuses in one line before loading torch. The comparison and RVM's metrics are
tested in tests/export/test_verify.py."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import CLIPS
from rvmkit.cli import main
from rvmkit.export import verify
from rvmkit.runtime import cpu


@pytest.mark.slow
def test_verify_cli_prints_a_row_per_size_and_output_and_passes(baked, capsys):
    rc = main(["verify", str(baked), "--video", str(CLIPS["milk"]), "--frames", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "PASS" in out and "model-reference" in out and "model-torch" in out
    for size in ("641x479", "1080x1920", "1920x1080"):  # 6 outputs, then 3 pairs' alpha metrics
        assert sum(line.startswith(size) for line in out.splitlines()) == 6 + 3
    assert "alpha difference in RVM's evaluation units" in out and "dtSSD" in out


@pytest.mark.slow
def test_verify_fails_with_nonzero_exit_on_a_perturbed_model(baked, tmp_path, capsys):
    model = onnx.load(str(baked))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.01, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    rc = main(["verify", str(broken), "--no-torch", "--frames", "1"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "FAIL" in captured.out and "verification failed" in captured.err


def test_verify_rejects_non_rvm_onnx_and_bad_frames(tmp_path, baked, capsys):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "relu.onnx"))
    assert main(["verify", str(tmp_path / "relu.onnx")]) == 2
    assert "not an RVM matting ONNX" in capsys.readouterr().err
    assert main(["verify", str(baked), "--frames", "0"]) == 2
    assert "--frames 0" in capsys.readouterr().err
    assert main(["verify", str(baked), "--downsample-ratio", "0.5"]) == 2
    assert "baked into the model" in capsys.readouterr().err


def test_verify_audio_only_clip_says_no_video_stream(baked, tmp_path, capsys):
    import av

    clip = tmp_path / "audio.mp4"
    with av.open(str(clip), "w") as container:
        sound = container.add_stream("aac", rate=48000)
        sound.layout = "mono"
        for start in range(0, 12288, 1024):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    assert main(["verify", str(baked), "--video", str(clip), "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"rvmkit: error: '{clip}': no video stream"


def test_verify_reads_the_clip_like_matte_before_loading_torch(baked, tmp_path, capsys, monkeypatch):
    from rvmkit import weights

    monkeypatch.setattr(weights, "load_model", lambda *a, **k: pytest.fail("torch model loaded first"))
    clip = tmp_path / "random.mp4"
    clip.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main(["verify", str(baked), "--video", str(clip)]) == 2
    assert "not a readable video or image" in capsys.readouterr().err


def test_verify_refuses_bf16_on_a_cpu_without_the_instructions(baked, capsys, monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "fma"})
    assert main(["verify", str(baked), "--no-torch", "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rvmkit: error: --precision bf16: this CPU lacks") and "\n" not in err
    assert main(["verify", str(baked), "--no-torch", "--backend", "onnxruntime", "--precision", "bf16"]) == 2
    assert "runs on --backend openvino only" in capsys.readouterr().err


def test_cli_backend_choices_are_verifys():
    from rvmkit.cli.verify import VERIFY_BACKENDS

    assert VERIFY_BACKENDS == verify.VERIFY_BACKENDS
