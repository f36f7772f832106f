"""`rvmkit verify`: the comparator table, its exit status, frame sources and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import CLIPS
from rvmkit.cli import main
from rvmkit.export import verify
from rvmkit.export.verify import AlphaMetrics, generated_frames, verify_model
from rvmkit.runtime import cpu


@pytest.fixture(scope="session")
def baked(tmp_path_factory, official_onnx) -> Path:
    from rvmkit.graph.bake import convert_official

    return convert_official(official_onnx, tmp_path_factory.mktemp("verify") / "baked.onnx", 0.25)


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


def test_verify_official_model_at_a_chosen_ratio_against_torch(official_onnx, checkpoint):
    from rvmkit.weights import load_model

    report = verify_model(official_onnx, torch_model=load_model(checkpoint), frames=2,
                          sizes=((320, 240),), downsample_ratio=0.5)
    assert report.ratio == 0.5 and report.ok, report.table()


def test_generated_frames_are_deterministic_and_sized():
    a, b = generated_frames(2, 33, 17), generated_frames(2, 33, 17)
    assert a[0].shape == (17, 33, 3) and a[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])  # the figure moves


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


# ---------------------------------------------------------------------------------------------
# RVM's evaluation metrics


def test_identical_alpha_sequences_score_zero_on_every_metric():
    rng = np.random.default_rng(3)
    metrics = AlphaMetrics()
    for _ in range(3):
        alpha = rng.random((17, 23), dtype=np.float32)
        metrics.add(alpha, alpha.copy())
    assert metrics.frames == 3
    assert all(value == 0 for value in metrics.result().values())


def test_mad_mse_and_dtssd_match_hand_computed_values():
    zeros = np.zeros((2, 2), np.float32)
    metrics = AlphaMetrics()
    metrics.add(zeros, zeros)  # frame 0: no difference, dtSSD counts 0 (as RVM averages it)
    metrics.add(np.array([[0, 0], [0, 1]], np.float32), zeros)  # one pixel of four off by 1
    result = metrics.result()
    # frame 1: MAD = MSE = 1/4 * 1e3 = 250; dtSSD = sqrt(1 / 4) * 1e2 = 50; means over the 2 frames
    assert result["MAD"] == pytest.approx(125) and result["MSE"] == pytest.approx(125)
    assert result["dtSSD"] == pytest.approx(25)
    half = np.array([[0.5, 0], [0, 0]], np.float32)
    assert verify.mad(half, zeros) == pytest.approx(125) and verify.mse(half, zeros) == pytest.approx(62.5)
    # the change from frame to frame, not the frames, is compared: a constant offset has no dtSSD
    assert verify.dtssd(zeros + 0.3, zeros + 0.3, zeros, zeros) == 0
    assert verify.dtssd(half, zeros, zeros, zeros) == pytest.approx(np.sqrt(0.25 / 4) * 1e2)


def test_grad_filter_is_rvms_sigma_1_4_derivative_of_gaussian():
    g, dg = verify.gauss_filters(1.4)
    # half size ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(3.62) = 4
    assert len(g) == len(dg) == 9
    kernel = np.outer(g, dg)
    assert np.sum(kernel ** 2) == pytest.approx(1)  # normalised to unit Frobenius norm
    assert np.allclose(kernel, -kernel[:, ::-1]) and np.allclose(kernel, kernel[::-1])  # odd in x, even in y


def _brute_gradient(image: np.ndarray) -> np.ndarray:
    """The 2-D correlation written out, with replicated borders: what OpenCV's filter2D computes."""
    sigma, half = 1.4, 4
    x = np.arange(-half, half + 1)
    gauss = np.exp(-x ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    kx = np.array([[gauss[i] * -x[j] * gauss[j] / sigma ** 2 for j in range(9)] for i in range(9)])
    kx /= np.sqrt((kx ** 2).sum())
    padded = np.pad(image.astype(np.float64), half, mode="edge")
    h, w = image.shape
    fx = np.zeros((h, w))
    fy = np.zeros((h, w))
    for i in range(9):
        for j in range(9):
            fx += kx[i, j] * padded[i:i + h, j:j + w]
            fy += kx.T[i, j] * padded[i:i + h, j:j + w]
    return np.sqrt(fx ** 2 + fy ** 2)


def test_grad_is_the_squared_difference_of_gradient_magnitudes_over_1e3():
    rng = np.random.default_rng(7)
    true = np.zeros((12, 15), np.float32)
    true[:, 7:] = 1  # a vertical edge
    pred = np.clip(true + rng.normal(0, 0.1, true.shape), 0, 1).astype(np.float32)
    assert np.allclose(verify.gauss_gradient(true), _brute_gradient(true))
    norm = (pred - pred.min()) / (pred.max() - pred.min())
    expected = ((_brute_gradient(norm) - _brute_gradient(true)) ** 2).sum() / 1e3
    assert verify.grad(pred, true) == pytest.approx(expected, rel=1e-6)
    assert verify.grad(pred, true) > 0
    # each alpha is min-max normalised first (RVM's low-resolution evaluation): a rescaled copy scores 0
    assert verify.grad(0.5 * pred + 0.2, pred) == pytest.approx(0, abs=1e-9)
    assert verify.grad(np.full_like(true, 0.7), np.zeros_like(true)) == 0  # flat images normalise to 0


def test_grad_is_scaled_to_512x288_pixels_and_budget_is_ten_percent_of_rvms_error():
    rng = np.random.default_rng(11)
    true = rng.random((36, 64), dtype=np.float32)
    pred = np.clip(true + rng.normal(0, 0.05, true.shape), 0, 1).astype(np.float32)
    metrics = AlphaMetrics()
    metrics.add(pred, true)
    result = metrics.result()
    assert result["Grad"] == pytest.approx(result["Grad_raw"] * 512 * 288 / (36 * 64))
    at_budget = {name: 0.1 * value for name, value in verify.PUBLISHED_ERROR.items()}
    assert all(verify.within_budget(at_budget).values())
    over = dict(at_budget, dtSSD=at_budget["dtSSD"] * 1.01)
    assert verify.within_budget(over) == {"MAD": True, "MSE": True, "Grad": True, "dtSSD": False}


@pytest.mark.slow
def test_verify_against_the_fast_path_reports_a_tiny_alpha_difference(official_onnx):
    report = verify_model(official_onnx, backend="onnxruntime", video=CLIPS["milk"], frames=3,
                          sizes=((320, 240),), downsample_ratio=0.5)
    assert report.ok, report.table()
    (row,) = report.alpha
    assert row.pair == "model-onnxruntime" and row.frames == 3 and not row.judged
    assert 0 < row.metrics["MAD"] < 0.01 and row.within_budget  # exact fp32: ~1e-5 per pixel
    assert report.max_error(pair="model-onnxruntime") <= 1e-4


def _has_bf16() -> bool:
    return bool((cpu.cpu_flags() or set()) & {"avx512_bf16", "amx_bf16"})


@pytest.mark.slow
@pytest.mark.skipif(not _has_bf16(), reason="needs a CPU with avx512_bf16 or amx_bf16")
def test_verify_judges_an_openvino_bf16_runner_on_rvms_metrics(official_onnx, capsys):
    pytest.importorskip("openvino", reason="openvino not installed")
    from rvmkit.cli.verify import print_report

    report = verify_model(official_onnx, reference=official_onnx, backend="openvino", precision="bf16",
                          video=CLIPS["milk"], frames=3,
                          sizes=((320, 240),), downsample_ratio=0.5)
    rc = print_report(report, official_onnx)
    captured = capsys.readouterr()
    rows = {row.pair: row for row in report.alpha}
    assert rows["model-openvino-bf16"].judged and rows["openvino-bf16-reference"].judged
    assert not rows["model-reference"].judged and rows["model-reference"].metrics["MAD"] == 0
    bf16 = rows["model-openvino-bf16"]
    assert bf16.metrics["MAD"] > 0 and bf16.metrics["dtSSD"] > 0  # bf16 is not fp32
    # its max abs rows are informational; verify fails exactly when the alpha is over the budget
    assert all(not r.gating for r in report.rows if "openvino" in r.pair)
    assert report.ok == bf16.within_budget == (rc == 0)
    judged = [line for line in captured.out.splitlines() if line.endswith(("PASS", "FAIL"))
              and "openvino-bf16" in line]
    assert len(judged) == 2
    if rc == 1:
        assert "alpha difference above 10% of RVM's own error (model-openvino-bf16" in captured.err


@pytest.mark.slow
@pytest.mark.skipif(not (cpu.cpu_flags() or set()) & {"avx512_fp16", "amx_fp16"},
                    reason="needs a CPU with avx512_fp16 or amx_fp16")
def test_verify_openvino_fp16_is_within_a_tenth_of_rvms_own_error(official_onnx):
    pytest.importorskip("openvino", reason="openvino not installed")
    report = verify_model(official_onnx, backend="openvino", precision="fp16", video=CLIPS["sister"],
                          frames=4,
                          sizes=((320, 240),), downsample_ratio=0.5)
    (row,) = report.alpha
    assert row.judged and row.metrics["MAD"] > 0  # fp16 is not fp32 ...
    assert row.within_budget and report.ok, report.table()  # ... but well within RVM's error (~4x margin)


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
