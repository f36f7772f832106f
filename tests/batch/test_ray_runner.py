"""`rvmkit batch` on a local Ray cluster (2 CPUs): same frames as `matte`, failure isolation, resume,
manifest schema. Inputs are short clips re-encoded from real frames, at 320x240 to keep inference cheap."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import CLIPS, one_line_error, png_frames, real_clip

pytest.importorskip("ray")

from rvmkit.cli import main  # noqa: E402

ROLES = ("composition", "alpha")


def manifest_items(out: Path) -> list[dict]:
    return json.loads((out / "manifest.json").read_text())["items"]


@pytest.fixture(scope="session")
def inputs(tmp_path_factory, official_onnx) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("batch-inputs")
    broken = folder / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return {"a": real_clip(folder / "a.mp4", "milk", 12), "b": real_clip(folder / "b.mp4", "sister", 10),
            "broken": broken}


@pytest.fixture(scope="session")
def first_run(tmp_path_factory, inputs, ray_local) -> tuple[int, Path, str]:
    """(exit code, output dir, stderr) of a --quiet batch of two clips and a broken file."""
    out = tmp_path_factory.mktemp("batch-out")
    argv = ["batch", str(inputs["a"]), str(inputs["b"]), str(inputs["broken"]), "--output-dir", str(out),
            "--outputs", ",".join(ROLES), "--format", "png", "--quiet"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out, err.getvalue()


def test_batch_records_broken_input_as_failed_and_mattes_the_rest(first_run, inputs):
    code, out, _err = first_run
    items = {Path(item["input"]).name: item for item in manifest_items(out)}
    assert code == 1
    assert items["a.mp4"]["status"] == "done" and items["b.mp4"]["status"] == "done"
    assert items["broken.mp4"]["status"] == "failed"
    assert "broken.mp4" in items["broken.mp4"]["error"]
    assert not list(out.glob("broken.*"))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "a.alpha", "a.composition", "b.alpha", "b.composition", "manifest.json"]


def test_quiet_batch_still_reports_each_failed_input_in_one_line(first_run, inputs):
    code, _out, err = first_run
    assert code == 1
    assert err.splitlines() == [line for line in err.splitlines() if line.strip()]
    [line] = err.splitlines()  # no progress, no summary: only the failure (Ray runs in a fixture here)
    assert line.startswith(f"failed {inputs['broken']}: ") and len(line) > len(f"failed {inputs['broken']}: ")


def test_batch_outputs_equal_sequential_matte(first_run, inputs, tmp_path):
    _code, out, _err = first_run
    assert main(["matte", str(inputs["a"]), "--output-composition", str(tmp_path / "c"),
                 "--output-alpha", str(tmp_path / "alpha"), "--quiet"]) == 0
    for role, sequential in (("composition", tmp_path / "c"), ("alpha", tmp_path / "alpha")):
        batch, reference = png_frames(out / f"a.{role}"), png_frames(sequential)
        assert len(batch) == len(reference) == 12
        for index, (got, want) in enumerate(zip(batch, reference, strict=True)):
            assert np.array_equal(got, want), f"{role} frame {index} differs"


def test_manifest_schema(first_run):
    _code, out, _err = first_run
    data = json.loads((out / "manifest.json").read_text())
    assert set(data) == {"items"} and len(data["items"]) == 3
    for item in data["items"]:
        assert set(item) == {"input", "status", "outputs", "error", "frames", "seconds", "fingerprint"}
        assert isinstance(item["fingerprint"], str) and item["fingerprint"]
        assert item["status"] in ("done", "failed", "skipped")
        assert Path(item["input"]).is_absolute()
        assert set(item["outputs"]) == set(ROLES)
        assert all(Path(p).is_absolute() for p in item["outputs"].values())
        assert isinstance(item["seconds"], float) and item["seconds"] >= 0
        if item["status"] == "done":
            assert item["error"] is None and item["frames"] == (12 if "a.mp4" in item["input"] else 10)
            assert all(Path(p).is_dir() for p in item["outputs"].values())
        else:
            assert isinstance(item["error"], str) and item["frames"] is None


def test_rerun_skips_finished_inputs_and_redoes_partial_ones(first_run, inputs):
    _code, out, _err = first_run
    argv = ["batch", str(inputs["a"]), str(inputs["b"]), str(inputs["broken"]), "--output-dir", str(out),
            "--outputs", ",".join(ROLES), "--format", "png", "--quiet"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "manifest.json"}
    assert main(argv) == 1
    status = {Path(i["input"]).name: i["status"] for i in manifest_items(out)}
    assert status == {"a.mp4": "skipped", "b.mp4": "skipped", "broken.mp4": "failed"}
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "manifest.json"} == mtimes
    # an output lost since (a crash between commits, a deleted file): that input is redone, b is not
    for frame in (out / "a.alpha").iterdir():
        frame.unlink()
    (out / "a.alpha").rmdir()
    assert main(argv[:3] + argv[4:]) == 0  # a and b only: exit 0
    items = {Path(i["input"]).name: i for i in manifest_items(out)}
    assert items["a.mp4"]["status"] == "done" and items["b.mp4"]["status"] == "skipped"
    assert len(list((out / "a.alpha").iterdir())) == 12
    assert (out / "b.composition").stat().st_mtime_ns == mtimes["b.composition"]


def test_batch_writes_named_videos_in_the_chosen_format(tmp_path, inputs, ray_local):
    from rvmkit.batch import run_batch
    from rvmkit.video.reader import open_source

    [item] = run_batch([inputs["b"]], tmp_path, outputs=["alpha"], fmt="mkv", num_workers=1)
    assert item.status == "done" and item.outputs == {"alpha": str(tmp_path / "b.alpha.mkv")}
    with open_source(tmp_path / "b.alpha.mkv") as source:
        assert source.info.frame_count == 10


def test_worker_the_cluster_cannot_place_stops_the_run_in_one_line(tmp_path, ray_local, official_onnx,
                                                                   monkeypatch):
    """On a cluster that may autoscale, more CPUs per worker than any node has are asked as is: the actor
    waits to be placed, and the run stops once none came up within the limit (never hangs)."""
    from rvmkit.batch import ray_runner
    from rvmkit.batch.work import MatteOptions
    from rvmkit.errors import RvmkitError

    monkeypatch.setattr(ray_runner, "_WORKER_START_TIMEOUT_S", 3.0)
    monkeypatch.setattr(ray_runner, "_session", {"local": False})
    clip = real_clip(tmp_path / "c.mp4", "milk", 2, size=(64, 48))
    run = ray_runner._ItemRun(str(clip), {"composition": str(tmp_path / "c.out.mp4")})
    with pytest.raises(RvmkitError, match=r"no Ray worker \(3 CPU each\) came up within 3 s; the cluster has "
                                          r"\{'CPU': 2\.0"):
        ray_runner.run_items([run], MatteOptions().checked(), num_workers=1, cpus_per_worker=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["c.mp4"]


def test_output_fingerprint_changes_with_options_and_input_version(tmp_path):
    from rvmkit.batch.work import MatteOptions, output_fingerprint

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"video")
    base = MatteOptions(background="white")
    same = output_fingerprint(base, clip)
    assert output_fingerprint(MatteOptions(background="white"), clip) == same
    assert output_fingerprint(MatteOptions(background="black"), clip) != same
    assert output_fingerprint(MatteOptions(background="white", crf=30), clip) != same
    assert output_fingerprint(base, clip, segments=2, warmup=8) != same
    assert output_fingerprint(base, clip, segments=2, warmup=8) != output_fingerprint(base, clip, 2, 16)
    assert output_fingerprint(base, clip, segments=1, warmup=8) == same  # W only matters with segments
    stat = clip.stat()
    clip.write_bytes(b"edits")  # same size, new mtime
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert output_fingerprint(base, clip) != same


def test_rerun_redoes_items_whose_options_or_input_changed(tmp_path, ray_local):
    from rvmkit.batch import run_batch

    clip = real_clip(tmp_path / "c.mp4", "milk", 4)
    out, output = tmp_path / "out", tmp_path / "out" / "c.composition.mkv"

    def batch(background: str) -> tuple[str, int, np.ndarray]:
        [item] = run_batch([clip], out, fmt="mkv", num_workers=1, background=background)
        assert manifest_items(out)[0]["fingerprint"] == item.fingerprint
        with av.open(str(output)) as container:
            frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
        return item.status, output.stat().st_mtime_ns, frames

    status, mtime, white = batch("white")
    assert status == "done" and len(white) == 4
    status, same_mtime, same = batch("white")  # same options, same input: untouched
    assert status == "skipped" and same_mtime == mtime and np.array_equal(same, white)
    status, changed_mtime, black = batch("black")  # stale outputs redone with the new background
    assert status == "done" and changed_mtime != mtime and white.mean() - black.mean() > 50
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the input replaced since
    status, touched_mtime, again = batch("black")
    assert status == "done" and touched_mtime != changed_mtime and np.array_equal(again, black)


@pytest.mark.parametrize("numbers, message", [
    ({"num_workers": 0}, "num workers 0"), ({"cpus_per_worker": -1}, "cpus per worker -1"),
    ({"segments": 0}, "segments"), ({"warmup": -1}, "warm"),
    ({"output_video_mbps": float("inf")}, "mbps inf"),
    ({"crf": 60}, "crf 60: beyond H.264"), ({"crf": 20, "fmt": "png"}, "every output here is a PNG sequence"),
], ids=["workers", "cpus", "segments", "warmup", "mbps-inf", "crf-h264", "crf-png"])
def test_run_batch_checks_every_number_before_creating_anything(tmp_path, official_onnx, no_ray, numbers,
                                                                message):
    from rvmkit.batch import run_batch
    from rvmkit.errors import RvmkitError

    with pytest.raises(RvmkitError, match=message):
        run_batch([tmp_path / "clip.mp4"], tmp_path / "out", **numbers)
    assert not (tmp_path / "out").exists()


def test_run_options_are_checked_like_the_keywords_and_not_taken_twice(tmp_path, official_onnx, no_ray):
    from rvmkit.batch import run_batch
    from rvmkit.batch.ray_runner import RunOptions
    from rvmkit.errors import RvmkitError

    with pytest.raises(RvmkitError, match="num workers 0"):
        run_batch([tmp_path / "clip.mp4"], tmp_path / "out", run=RunOptions(num_workers=0))
    with pytest.raises(TypeError, match="segments given both in run= and as keywords"):
        run_batch([tmp_path / "clip.mp4"], tmp_path / "out", run=RunOptions(), segments=2)
    assert not (tmp_path / "out").exists()


def test_segmented_matte_checks_quality_settings_before_ray(tmp_path, no_ray):
    from rvmkit.batch.ray_runner import convert_segmented
    from rvmkit.errors import RvmkitError

    with pytest.raises(RvmkitError, match="crf 60: beyond H.264"):
        convert_segmented(CLIPS["milk"], tmp_path / "c.mp4", segments=2, crf=60, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, message", [
    (["--background", "nocolour"], "background 'nocolour': not a colour"),
    (["--background", "missing.png"], "background 'missing.png': not a colour"),
    (["--downsample-ratio", "0"], "downsample"),
    (["--model", "missing.onnx"], "missing.onnx"),
    (["--backend", "openvino", "--device", "cuda"], "backend openvino: runs on the CPU"),
    (["--model", "__bad.pth"], "bad.pth': not a PyTorch checkpoint"),
], ids=["colour", "background-file", "ratio", "model", "backend-device", "broken-checkpoint"])
def test_argument_errors_stop_the_batch_up_front(tmp_path, capsys, no_ray, official_onnx, extra, message):
    """Each would fail every item alike: exit 2, one line, no output folder, no manifest."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not looked at")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    extra = [str(tmp_path / "bad.pth") if arg == "__bad.pth" else arg for arg in extra]
    assert main(["batch", str(clip), "--output-dir", str(tmp_path / "out"), "--quiet", *extra]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_duplicate_output_names_fail_before_creating_anything(tmp_path, capsys, no_ray):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.mp4").write_bytes(b"not looked at")
    out = tmp_path / "o" / "out"
    assert main(["batch", str(tmp_path / "a" / "x.mp4"), str(tmp_path / "b" / "x.mp4"),
                 "--output-dir", str(out), "--quiet"]) == 2
    assert "same output name" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_output_dir_under_a_file_is_a_one_line_error(tmp_path, capsys, no_ray):
    (tmp_path / "file").write_bytes(b"x")
    assert main(["batch", str(tmp_path / "file"), "--output-dir", str(tmp_path / "file" / "out")]) == 2
    assert "is not a directory" in one_line_error(capsys)


def test_unwritable_output_dir_is_a_one_line_error(tmp_path, capsys, no_ray, monkeypatch):
    (tmp_path / "ro").mkdir(mode=0o555)
    real_access = os.access  # chmod does not stop root: answer as the system would for a user
    monkeypatch.setattr(os, "access",
                        lambda p, mode: False if str(p) == str(tmp_path / "ro") else real_access(p, mode))
    assert main(["batch", str(tmp_path / "ro"), "--output-dir", str(tmp_path / "ro" / "out")]) == 2
    assert "permission denied" in one_line_error(capsys)
    assert not (tmp_path / "ro" / "out").exists()


@pytest.fixture
def ray_up(monkeypatch):
    """Ray 'started' (nothing to shut down) without starting it; the run must stop before any job."""
    from rvmkit.batch import ray_runner

    def refuse(*args, **kwargs):
        raise AssertionError("jobs were run")

    monkeypatch.setattr(ray_runner, "init_ray", lambda *args, **kwargs: False)
    monkeypatch.setattr(ray_runner, "run_items", refuse)


def test_output_dir_that_cannot_be_created_is_a_one_line_error(tmp_path, capsys, ray_up, monkeypatch):
    """What root gets on a read-only filesystem: mkdir itself fails, after the access checks passed
    (the folder is made once Ray is up, so a failed connection leaves nothing behind)."""
    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not looked at")
    assert main(["batch", str(clip), "--output-dir", str(tmp_path / "ro" / "out"), "--quiet"]) == 2
    assert "cannot create the output folder" in one_line_error(capsys)


@pytest.mark.parametrize("quiet, level", [(True, logging.ERROR), (False, logging.WARNING)])
def test_init_ray_quiet_keeps_ray_warnings_off_stderr(monkeypatch, quiet, level):
    """ray.init's documented logging_level (the driver's "ray" logger) carries --quiet; Ray's token-auth
    notice is a WARNING on that logger, emitted after ray.init sets the level."""
    import ray

    from rvmkit.batch import ray_runner

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(ray, "nodes", lambda: [{}])
    monkeypatch.setattr(ray_runner, "_session", {})
    assert ray_runner.init_ray(quiet=quiet) is True
    [kwargs] = calls
    assert kwargs["address"] == "local"  # a new cluster, never the one /tmp/ray/ray_current_cluster names
    assert kwargs["logging_level"] == level and kwargs["configure_logging"] is True
    assert kwargs["log_to_driver"] is False


@pytest.mark.parametrize("fmt", ["mp4", "png"])
def test_an_output_that_is_another_items_input_is_refused_before_any_work(tmp_path, capsys, no_ray, fmt):
    """The issue's repro: a.mp4's composition would be written over the input a.composition.mp4."""
    folder = tmp_path / "c"
    folder.mkdir()
    first = folder / "a.mp4"
    first.write_bytes(b"clip one")
    second = folder / ("a.composition.mp4" if fmt == "mp4" else "a.composition")
    if fmt == "png":  # an image-folder input where a's PNG-sequence output would go
        second.mkdir()
        (second / "0001.png").write_bytes(b"frame")
    else:
        second.write_bytes(b"clip two")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert main(["batch", str(first), str(second), "--output-dir", str(folder), "--format", fmt,
                 "--quiet"]) == 2
    error = one_line_error(capsys)
    assert "a.composition" in error and ("is the input" in error or "input folder" in error), error
    assert first.read_bytes() == b"clip one"
    assert (second.read_bytes() if fmt == "mp4" else (second / "0001.png").read_bytes()) in (b"clip two",
                                                                                            b"frame")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_an_output_hard_linked_to_an_input_is_refused(tmp_path, capsys, no_ray):
    """Another name for the same file is the same file."""
    (tmp_path / "in").mkdir()
    clip = tmp_path / "in" / "b.mp4"
    clip.write_bytes(b"clip")
    out = tmp_path / "out"
    out.mkdir()
    os.link(clip, out / "a.composition.mp4")
    (tmp_path / "in" / "a.mp4").write_bytes(b"another clip")
    first = tmp_path / "in" / "a.mp4"
    assert main(["batch", str(first), str(clip), "--output-dir", str(out), "--quiet"]) == 2
    assert "is the input" in one_line_error(capsys)
    assert clip.read_bytes() == b"clip"


def test_an_unrelated_file_at_an_output_name_needs_overwrite(tmp_path, capsys, no_ray):
    """Only the batch's own earlier outputs (recorded in its manifest) are replaced without --overwrite."""
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"not looked at")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.alpha.mp4").write_text("my notes")
    args = ["batch", str(clip), "--output-dir", str(out), "--outputs", "composition,alpha", "--quiet"]
    assert main(args) == 2
    assert "a.alpha.mp4': already exists and is not an output of an earlier batch" in one_line_error(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["a.alpha.mp4"]
    assert (out / "a.alpha.mp4").read_text() == "my notes"


def test_overwrite_lets_a_batch_replace_an_unrelated_file(tmp_path, ray_local):
    clip = real_clip(tmp_path / "a.mp4", "milk", 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.alpha").mkdir()
    (out / "a.alpha" / "000000.png").write_text("an older frame folder")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["batch", str(clip), "--output-dir", str(out), "--outputs", "alpha", "--format", "png",
                     "--overwrite", "--quiet"])
    assert code == 0, err.getvalue()
    assert [frame.shape for frame in png_frames(out / "a.alpha")] == [(240, 320)] * 3
    assert sorted(p.name for p in out.iterdir()) == ["a.alpha", "manifest.json"]


def test_stitched_outputs_are_published_together_or_not_at_all(tmp_path):
    from rvmkit.batch import work
    from rvmkit.errors import RvmkitError
    from rvmkit.fileio import make_temp

    outputs = {"alpha": str(tmp_path / "x.alpha"), "composition": str(tmp_path / "x.composition.mp4")}

    def stage() -> dict[str, str]:
        frames = make_temp(Path(outputs["alpha"]), folder=True)
        (frames / "000000.png").write_text("frame")
        video = make_temp(Path(outputs["composition"]))
        video.write_text("video")
        return {"alpha": str(frames), "composition": str(video)}

    staged = stage()
    Path(outputs["composition"]).write_text("appeared during the run")
    with pytest.raises(RvmkitError, match="x.composition.mp4': already exists"):
        work.publish_stitched(staged, outputs, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.composition.mp4"] and staged == {}
    Path(outputs["composition"]).unlink()
    staged = stage()
    work.publish_stitched(staged, outputs, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.alpha", "x.composition.mp4"] and staged == {}


@pytest.mark.parametrize(("extra", "message"), [
    (["--seq-chunk", str(10**9)], "seq chunk 1000000000: must be a whole number from 1 to 64"),
    (["--output-video-mbps", "1e9"], "output video mbps 1000000000.0: must be a number from 0.01 to 1000"),
    (["--input-resize", "100000", "100000"], "input resize 100000x100000"),
    (["--downsample-ratio", "1e-9"], "downsample ratio 1e-9: below 1/16384"),
], ids=["seq-chunk", "mbps", "resize", "ratio"])
def test_matte_numbers_are_checked_before_the_batch_starts(tmp_path, capsys, no_ray, official_onnx, extra,
                                                           message):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not looked at")
    assert main(["batch", str(clip), "--output-dir", str(tmp_path / "out"), "--quiet", *extra]) == 2
    assert message in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_batch_paths_collide_with_neither_the_manifest_nor_the_background(tmp_path, capsys, no_ray,
                                                                          official_onnx):
    """An input that is the manifest it would rewrite, and a background that is an output it would
    replace, are refused before any work; nothing is changed."""
    out = tmp_path / "out"
    out.mkdir()
    clip = real_clip(tmp_path / "a.mp4", "milk", 2, size=(64, 48))
    (out / "manifest.json").write_bytes(clip.read_bytes())
    (out / "a.composition.mp4").write_bytes(clip.read_bytes())
    before = {path: path.read_bytes() for path in out.iterdir()}
    assert main(["batch", str(out / "manifest.json"), "--output-dir", str(out), "--quiet"]) == 2
    assert "(manifest): is the input" in one_line_error(capsys)
    assert main(["batch", str(clip), "--output-dir", str(out), "--background", str(out / "a.composition.mp4"),
                 "--overwrite", "--quiet"]) == 2
    assert "(composition output of" in (err := one_line_error(capsys)) and "): is the background" in err
    assert before == {path: path.read_bytes() for path in out.iterdir()}
