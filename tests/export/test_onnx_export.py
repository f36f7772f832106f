"""`rvmkit export`: the seed recipe's TRT-ready ONNX, its interface, parity, opsets, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import CLIPS, run_cli
from rvmkit.contract import DYNAMIC_AXES, INPUT_NAMES, OUTPUT_NAMES
from rvmkit.export.verify import verify_model
from rvmkit.graph.io import baked_ratio, dim_names
from rvmkit.trt.shapes import symbolic_shape_check

BIG_SIZES = ((1080, 1920), (1920, 1080))


@pytest.fixture(scope="session")
def seed_export(tmp_path_factory, checkpoint) -> tuple[int, str, Path]:
    """The issue's seed command, as-is (plus one verification frame to keep it short)."""
    out = tmp_path_factory.mktemp("seed") / "rvm_mobilenetv3.onnx"
    rc, stdout, _ = run_cli(["export", "--model-variant", "mobilenetv3", "--checkpoint", str(checkpoint),
                             "--precision", "float32", "--opset", "12", "--device", "cpu",
                             "--output", str(out), "--verify-frames", "1"])
    return rc, stdout, out


@pytest.fixture(scope="session")
def fp16_export(tmp_path_factory, checkpoint) -> list[Path]:
    from rvmkit.export.onnx_export import export_onnx
    from rvmkit.weights import load_model

    out = tmp_path_factory.mktemp("fp16") / "rvm_fp16.onnx"
    return export_onnx(load_model(checkpoint), out, precision="float16")


@pytest.fixture(scope="session")
def torch_model(checkpoint):
    from rvmkit.weights import load_model

    return load_model(checkpoint)


def trt(path: Path) -> Path:
    return path.with_name(f"{path.stem}_trt.onnx")


def test_seed_command_writes_both_files_verifies_and_passes(seed_export):
    rc, stdout, out = seed_export
    assert rc == 0
    assert out.exists() and trt(out).exists()
    assert "PASS" in stdout and "1080x1920" in stdout and "641x479" in stdout
    assert not list(out.parent.glob("*.part")), "temporary files left behind"


@pytest.mark.parametrize("which", ["export", "trt", "fp16", "fp16_trt"])
def test_interface_and_axis_names_match_the_seed(which, seed_export, fp16_export):
    path = {"export": seed_export[2], "trt": trt(seed_export[2]), "fp16": fp16_export[0],
            "fp16_trt": fp16_export[1]}[which]
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == INPUT_NAMES
    assert [o.name for o in model.graph.output] == OUTPUT_NAMES
    dims = dim_names(model)
    for name, axes in DYNAMIC_AXES.items():
        for axis, dim in axes.items():
            assert dims[name][axis] == dim, (name, axis)
    assert baked_ratio(path) == 0.25
    half = onnx.TensorProto.FLOAT16 if "fp16" in which else onnx.TensorProto.FLOAT
    assert {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]} == {half}
    assert all(n.op_type != "Constant" or n.output[0] != "downsample_ratio" for n in model.graph.node)


def test_trt_export_passes_symbolic_shape_inference(seed_export, fp16_export):
    for path in (trt(seed_export[2]), fp16_export[1]):
        ok, detail = symbolic_shape_check(path)
        assert ok, detail
        assert "fgr[" in detail


def test_fp32_export_matches_official_and_torch_over_20_frames(seed_export, official_onnx, torch_model):
    report = verify_model(trt(seed_export[2]), reference=official_onnx, torch_model=torch_model,
                          video=CLIPS["book"], frames=20, sizes=((641, 479),))
    assert report.ok, report.table()
    assert report.max_error("model-reference") <= 1e-4


def test_fp32_export_matches_official_at_1080p_sizes(seed_export, official_onnx):
    report = verify_model(trt(seed_export[2]), reference=official_onnx, video=CLIPS["milk"], frames=2,
                          sizes=BIG_SIZES)
    assert report.ok, report.table()
    assert {r.size for r in report.rows} == {"1080x1920", "1920x1080"}


def test_fp16_export_within_3e2_of_official_at_all_sizes(fp16_export, official_onnx):
    report = verify_model(fp16_export[1], reference=official_onnx, video=CLIPS["book"], frames=2,
                          sizes=((641, 479), *BIG_SIZES))
    assert report.ok, report.table()
    assert report.max_error("model-reference") <= 3e-2


def test_full_size_states_give_the_same_result_as_initial_states(seed_export):
    import onnxruntime as ort

    session = ort.InferenceSession(str(trt(seed_export[2])), providers=["CPUExecutionProvider"])
    src = np.random.default_rng(0).random((1, 3, 240, 320), dtype=np.float32)
    initial = {f"r{k}i": np.zeros((1, 1, 1, 1), np.float32) for k in range(1, 5)}
    small = session.run(None, {"src": src, **initial})
    full = session.run(None, {"src": src, **{f"r{k}i": np.zeros_like(small[k + 1]) for k in range(1, 5)}})
    for a, b in zip(small, full, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("opset", [11, 17])
def test_opsets_11_and_17_match_official(opset, tmp_path, torch_model, official_onnx):
    from rvmkit.export.onnx_export import export_onnx

    paths = export_onnx(torch_model, tmp_path / f"rvm_op{opset}.onnx", opset=opset)
    assert onnx.load(str(paths[-1])).opset_import[0].version == opset
    report = verify_model(paths[-1], reference=official_onnx, video=CLIPS["sister"], frames=3,
                          sizes=((641, 479),))
    assert report.ok, report.table()


@pytest.mark.slow
def test_resnet50_random_checkpoint_exports_and_matches_torch(tmp_path):
    import torch

    from rvmkit.model import MattingNetwork

    torch.manual_seed(0)
    pth = tmp_path / "rvm_resnet50_random.pth"
    torch.save(MattingNetwork("resnet50").state_dict(), pth)
    out = tmp_path / "rvm_resnet50.onnx"
    rc, stdout, stderr = run_cli(["export", "--model-variant", "resnet50", "--checkpoint", str(pth),
                                  "--output", str(out), "--no-simplify", "--verify-frames", "1"])
    assert rc == 0, stderr
    assert "model-torch" in stdout and "reference" not in stdout.split("\n", 1)[1]
    assert dim_names(onnx.load(str(out)))["r2o"] == ["batch_size8", 32, "height8", "width8"]
    assert not trt(out).exists()


def test_export_replaces_existing_files_only_with_overwrite(tmp_path, torch_model):
    from rvmkit.errors import RvmkitError
    from rvmkit.export.onnx_export import export_onnx

    out = tmp_path / "rvm.onnx"
    out.write_text("an older export")
    with pytest.raises(RvmkitError, match="already exists"):
        export_onnx(torch_model, out, simplify=False)
    assert out.read_text() == "an older export"
    assert export_onnx(torch_model, out, simplify=False, overwrite=True) == [out]
    assert [i.name for i in onnx.load(str(out)).graph.input] == INPUT_NAMES
    assert sorted(tmp_path.iterdir()) == [out]
