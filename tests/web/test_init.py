"""`write_site` / `rvmkit export-web`: the folder's contents, and the file-safety rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from conftest import REPO
from rvmkit import web
from rvmkit.cli import main
from rvmkit.errors import RvmkitError
from rvmkit.graph.pools import ceil_pools


def fake_converter(calls: list[float], fail_at: float | None = None):
    """Stands in for the real conversion (tested in test_convert.py) where only the folder logic is tested."""
    def convert(source: Path, output: Path, ratio: float, check: bool) -> Path:
        calls.append(ratio)
        if ratio == fail_at:
            raise RvmkitError("conversion failed")
        output.write_bytes(b"model at %g" % ratio)
        return output
    return convert


def leftovers(parent: Path) -> list[str]:
    return sorted(entry.name for entry in parent.iterdir() if entry.name.startswith("."))


@pytest.fixture(scope="module")
def real_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return web.write_site(tmp_path_factory.mktemp("web") / "site", ratios=(0.25, 0.5))


def test_site_holds_page_runtime_and_one_baked_model_per_ratio(real_site: Path) -> None:
    from rvmkit.graph.io import baked_ratio, require_rvm_onnx

    out = real_site
    manifest = json.loads((out / "models.json").read_text())
    assert [model["ratio"] for model in manifest["models"]] == [0.25, 0.5]
    for model in manifest["models"]:
        path = out / model["file"]
        assert path.name == f"rvm_mobilenetv3_r{model['ratio']:g}.onnx"
        assert model["sha256"] == web._sha256(path) and model["bytes"] == path.stat().st_size
        onnx_model = require_rvm_onnx(path)
        assert baked_ratio(onnx_model) == pytest.approx(model["ratio"])
        assert "downsample_ratio" not in [i.name for i in onnx_model.graph.input]
    for name in web.PAGE_FILES:
        assert (out / name).read_bytes() == (web.STATIC / name).read_bytes()
    for name in web.ORT_FILES:
        assert (out / "ort" / name).read_bytes() == (web.ort_dir() / name).read_bytes()
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    assert manifest["onnxruntime_web"] == pinned
    assert "Cross-Origin-Embedder-Policy: require-corp" in (out / "_headers").read_text()
    for model in manifest["models"]:  # onnxruntime-web's WebGPU kernel refuses ceil_mode pools
        assert ceil_pools(onnx.load(str(out / model["file"])).graph) == 0
    assert leftovers(out.parent) == []


def test_non_empty_folder_is_refused_without_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "notes.txt").write_text("mine")
    assert main(["export-web", str(tmp_path / "site")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "already exists" in error and "--overwrite" in error
    assert [p.name for p in (tmp_path / "site").iterdir()] == ["notes.txt"]


def test_overwrite_refuses_a_folder_that_is_not_an_earlier_site(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "models.json").write_text("{}")
    (site / "holiday.mp4").write_text("mine")
    with pytest.raises(RvmkitError, match="holiday.mp4"):
        web.write_site(site, overwrite=True)
    assert (site / "holiday.mp4").read_text() == "mine"


def test_overwrite_replaces_an_earlier_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(web, "_web_model", fake_converter(calls))
    site = web.write_site(tmp_path / "site", ratios=(0.25,))
    (site / "models" / "stale.onnx").write_text("old")
    web.write_site(site, ratios=(0.4,), overwrite=True)
    assert sorted(p.name for p in (site / "models").iterdir()) == ["rvm_mobilenetv3_r0.4.onnx"]
    assert calls == [0.25, 0.4] and leftovers(tmp_path) == []


def test_empty_folder_is_filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "_web_model", fake_converter([]))
    (tmp_path / "site").mkdir()
    assert (web.write_site(tmp_path / "site", ratios=(0.5,)) / "index.html").is_file()


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(web, "_web_model", fake_converter(calls, fail_at=0.5))
    with pytest.raises(RvmkitError, match="conversion failed"):
        web.write_site(tmp_path / "site", ratios=(0.25, 0.5))
    assert calls == [0.25, 0.5] and list(tmp_path.iterdir()) == []


def test_missing_runtime_files_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    static = tmp_path / "static"
    shutil.copytree(web.STATIC, static, ignore=shutil.ignore_patterns("*.wasm"))
    monkeypatch.setattr(web, "STATIC", static)
    with pytest.raises(RvmkitError, match="make install"):
        web.write_site(tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_trt_ready_model_and_bad_ratio_are_refused(tmp_path: Path, real_site: Path) -> None:
    with pytest.raises(RvmkitError, match="official RVM ONNX"):
        web.write_site(tmp_path / "site", model=real_site / "models" / "rvm_mobilenetv3_r0.25.onnx")
    with pytest.raises(RvmkitError, match="ratio"):
        web.write_site(tmp_path / "site", ratios=(1.5,))
    assert not (tmp_path / "site").exists()


def impostor(path: Path, shapes: bool) -> Path:
    """An ONNX with RVM's input and output names (and downsample_ratio) around another graph: fgr = src,
    pha = src * ratio (3 channels, not 1), r*o = r*i. `shapes`: typed inputs (onnxsim then accepts it)."""
    def value(name: str, rank: int) -> onnx.ValueInfoProto:
        dims = ["n", 3, "h", "w"] if name in ("src", "fgr", "pha") else ["n", "c", "y", "x"]
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims[:rank] if shapes else None)

    inputs = [value(name, 4) for name in ("src", "r1i", "r2i", "r3i", "r4i")]
    inputs.append(helper.make_tensor_value_info("downsample_ratio", TensorProto.FLOAT, [1]))
    outputs = [value(name, 4) for name in ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")]
    nodes = [helper.make_node("Identity", ["src"], ["fgr"]),
             helper.make_node("Mul", ["src", "downsample_ratio"], ["pha"]),
             *[helper.make_node("Identity", [f"r{i}i"], [f"r{i}o"]) for i in range(1, 5)]]
    graph = helper.make_graph(nodes, "impostor", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(path))
    return path


@pytest.mark.parametrize("shapes", [False, True], ids=["onnxsim-fails", "runs-but-not-a-matte"])
def test_model_with_rvm_names_but_another_graph_is_one_line(tmp_path: Path, shapes: bool,
                                                            capsys: pytest.CaptureFixture) -> None:
    model = impostor(tmp_path / "other.onnx", shapes)
    before = model.read_bytes()
    assert main(["export-web", str(tmp_path / "site"), "--model", str(model)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("rvmkit: error: ") and "Traceback" not in error
    assert "other.onnx" in error and "not a graph export-web can convert" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.onnx"] and model.read_bytes() == before


def test_overwrite_never_replaces_a_site_that_holds_the_input_model(tmp_path: Path, official_onnx: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "models.json").write_text("{}")
    (site / "models").mkdir()
    model = site / "models" / "mine.onnx"
    shutil.copyfile(official_onnx, model)
    assert main(["export-web", str(site), "--model", str(model), "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is or holds the input model" in error
    assert model.read_bytes() == official_onnx.read_bytes() and leftovers(tmp_path) == []
