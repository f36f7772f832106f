"""`rvmkit convert`: official RVM ONNX -> TRT-ready ONNX by graph editing, equal to the official run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from conftest import CLIPS
from rvmkit.cli import main
from rvmkit.contract import DYNAMIC_AXES, INPUT_NAMES, OUTPUT_NAMES
from rvmkit.export.verify import verify_model
from rvmkit.graph.bake import bake_ratio, rewrite_crop_sizes
from rvmkit.graph.io import baked_ratio, dim_names
from rvmkit.trt.shapes import symbolic_shape_check


@pytest.fixture(scope="session")
def converted(tmp_path_factory, official_onnx) -> Path:
    out = tmp_path_factory.mktemp("convert") / "rvm_converted.onnx"
    assert main(["convert", str(official_onnx), "--downsample-ratio", "0.4", "--output", str(out)]) == 0
    return out


def test_converted_model_has_the_export_interface(converted):
    model = onnx.load(str(converted))
    assert [i.name for i in model.graph.input] == INPUT_NAMES
    assert [o.name for o in model.graph.output] == OUTPUT_NAMES
    dims = dim_names(model)
    for name, axes in DYNAMIC_AXES.items():
        assert [dims[name][axis] for axis in axes] == list(axes.values()), name
    assert not list(converted.parent.glob("*_trt.onnx")), "convert writes exactly OUTPUT"


def test_converted_model_equals_official_at_the_baked_ratio(converted, official_onnx):
    report = verify_model(converted, reference=official_onnx, video=CLIPS["book"], frames=3,
                          sizes=((641, 479), (320, 240)))
    assert report.ratio == pytest.approx(0.4)
    assert report.max_error() <= 1e-5, report.table()


def test_baked_ratio_read_from_metadata_and_from_the_graph(converted):
    model = onnx.load(str(converted))
    assert baked_ratio(model) == pytest.approx(0.4)
    del model.metadata_props[:]
    assert baked_ratio(model) == pytest.approx(0.4)


@pytest.mark.slow
def test_converted_model_passes_symbolic_shape_inference(converted):
    """The official decoder crops (nested ceil() sizes) are rewritten as (n + 1) // 2 chains."""
    ok, detail = symbolic_shape_check(converted)
    assert ok, detail
    assert "fgr[" in detail and "r4o[" in detail


def test_crop_rewrite_replaces_the_three_pooled_skip_shapes(official_onnx):
    """Shape(AveragePool^k(src_sm)) feeding the crops becomes Shape(src_sm) + k (Add 1, Div 2);
    the finest crop already reads Shape(src_sm) and stays."""
    model = bake_ratio(onnx.load(str(official_onnx)), 0.4)
    assert rewrite_crop_sizes(model.graph) == 3
    producers = {out: node for node in model.graph.node for out in node.output}
    shapes = [n for n in model.graph.node if n.op_type == "Shape"]
    assert not any(n.input[0] in producers and producers[n.input[0]].op_type == "AveragePool" for n in shapes)
    assert sum(n.op_type == "Div" and "rvmkit" in n.name for n in model.graph.node) == 1 + 2 + 3
    onnx.checker.check_model(model)
    assert rewrite_crop_sizes(model.graph) == 0  # idempotent


@pytest.mark.slow
def test_convert_works_without_torch(tmp_path, official_onnx):
    """Graph editing only: with torch unimportable (onnxsim then unavailable too, it imports
    torch), convert still bakes the ratio and the result equals the official model."""
    out = tmp_path / "c.onnx"
    code = ("import sys; sys.modules['torch'] = None; from pathlib import Path; "
            "from rvmkit.graph.bake import convert_official; "
            f"convert_official(Path({str(official_onnx)!r}), Path({str(out)!r}), 0.25)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == INPUT_NAMES
    assert baked_ratio(model) == 0.25
    assert symbolic_shape_check(out)[0]
    report = verify_model(out, reference=official_onnx, frames=2, sizes=((641, 479),))
    assert report.max_error() <= 1e-5, report.table()


def _not_rvm(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize("case, message", [
    ("ratio0", "must be > 0 and <= 1"),
    ("ratio2", "must be > 0 and <= 1"),
    ("not_rvm", "not an RVM matting ONNX"),
    ("corrupt", "not a valid ONNX model"),
    ("missing", "no such model file"),
    ("already_baked", "has no downsample_ratio input"),
    ("unwritable", "is not a directory"),
    ("not_onnx_suffix", "output must be a .onnx file"),
])
def test_convert_errors_are_one_line(case, message, tmp_path, official_onnx, converted, capsys):
    source, ratio, out = official_onnx, "0.25", tmp_path / "out.onnx"
    if case == "ratio0":
        ratio = "0"
    elif case == "ratio2":
        ratio = "2"
    elif case == "not_rvm":
        source = _not_rvm(tmp_path / "relu.onnx")
    elif case == "corrupt":
        source = tmp_path / "corrupt.onnx"
        source.write_bytes(b"\x00garbage" * 10)
    elif case == "missing":
        source = tmp_path / "missing.onnx"
    elif case == "already_baked":
        source = converted
    elif case == "unwritable":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out.onnx"
    elif case == "not_onnx_suffix":
        out = tmp_path / "out.txt"
    rc = main(["convert", str(source), "--downsample-ratio", ratio, "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_require_writable_output_reports_a_folder_where_no_file_can_be_created(tmp_path, monkeypatch):
    import tempfile

    from rvmkit.errors import RvmkitError
    from rvmkit.fileio import require_writable_output

    def fail(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(tempfile, "mkstemp", fail)
    with pytest.raises(RvmkitError, match="cannot create files in .*No such file or directory"):
        require_writable_output(tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_convert_replaces_an_existing_file_only_with_overwrite(tmp_path, official_onnx, capsys):
    out = tmp_path / "notes_trt.onnx"
    out.write_text("unrelated notes")
    assert main(["convert", str(official_onnx), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists; use --overwrite" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "unrelated notes"
    assert main(["convert", str(official_onnx), "--output", str(out), "--overwrite"]) == 0
    assert [i.name for i in onnx.load(str(out)).graph.input] == INPUT_NAMES
    assert sorted(tmp_path.iterdir()) == [out]
