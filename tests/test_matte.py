"""`rvmkit matte` / `rvmkit.convert_video` end to end on real footage: exact alpha, complete outputs,
inputs of every kind, one-line errors that write nothing, and interrupted runs that leave nothing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import av
import numpy as np
import onnx
import pytest
from test_backends import baked_onnx as baked_onnx  # the fixture, shared
from test_backends import official_alphas

from conftest import CLIPS, read_frames, write_clip
from rvmkit import convert_video
from rvmkit.cli import main
from rvmkit.errors import RvmkitError
from rvmkit.runtime.onnxruntime import OnnxRuntimeBackend
from rvmkit.video.writer import encode_png

RATIO = "0.25"  # cheap on 2 CPU cores; the agreement does not depend on the ratio
QUIET = ["--quiet", "--downsample-ratio", RATIO]


def make_clip(path: Path, frames: list[np.ndarray], fps: int = 30, audio: bool = True) -> Path:
    """An H.264 .mp4 of real frames, with a 440 Hz AAC track when `audio`."""
    return write_clip(path, frames, fps=fps, audio=audio)


def probe(path: Path, codec: str | None = None) -> dict:
    """Frame count, size, rate, frame times, audio presence, and the decoded frames (RGBA if asked)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = av.CodecContext.create(codec, "r") if codec else None
        frames, times = [], []
        packets = container.demux(stream)
        decoded = (f for p in packets for f in (context.decode(p) if context else p.decode()))
        for frame in decoded:
            frames.append(frame.to_ndarray(format="rgba" if codec else "rgb24"))
            times.append(float(frame.pts * stream.time_base))
        return {"count": len(frames), "size": (stream.width, stream.height), "rate": stream.average_rate,
                "times": times, "audio": bool(container.streams.audio), "frames": frames}


def pngs(folder: Path) -> list[np.ndarray]:
    result = []
    for name in sorted(os.listdir(folder)):
        with av.open(str(folder / name)) as container:
            frame = next(container.decode(video=0))
            result.append(frame.to_ndarray(format="gray" if frame.format.name == "gray" else "rgb24"))
    return result


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory) -> Path:
    """6 real frames (book.mkv) with audio: outputs of every kind are checked against it."""
    return make_clip(tmp_path_factory.mktemp("clip") / "book6.mp4", read_frames("book", 6))


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_alpha_png_sequence_equals_the_official_onnx(official_onnx, tmp_path, capsys):
    clip = CLIPS["milk"]
    assert main(["matte", str(clip), "--output-alpha", str(tmp_path / "alpha"), *QUIET]) == 0
    ours = pngs(tmp_path / "alpha")
    frames = read_frames("milk", 1000)
    assert len(ours) == len(frames) == 51
    reference = official_alphas(official_onnx, frames, float(RATIO))
    for index, (alpha, ref) in enumerate(zip(ours, reference, strict=True)):
        expected = np.clip(ref[0, 0] * 255 + 0.5, 0, 255).astype(np.uint8)
        assert alpha.shape == (480, 640)
        diff = np.abs(alpha.astype(int) - expected.astype(int)).max()
        assert diff <= 2, f"frame {index}: alpha off by {diff}/255"
    assert capsys.readouterr().err == ""  # --quiet: no progress bar, no summary


def test_video_outputs_keep_count_size_rate_timestamps_and_audio(short_clip, tmp_path):
    source = probe(short_clip)
    result = convert_video(short_clip, tmp_path / "comp.mp4", tmp_path / "alpha.webm", tmp_path / "fgr.mkv",
                           downsample_ratio=RATIO, progress=False, preview=tmp_path / "sheet.png")
    assert result.frames == 6 and set(result.outputs) == {"composition", "alpha", "foreground", "preview"}
    for name in ("comp.mp4", "alpha.webm", "fgr.mkv"):
        out = probe(tmp_path / name)
        assert out["count"] == source["count"] == 6, name
        assert out["size"] == (640, 480) and out["rate"] == source["rate"] and out["audio"], name
        # absolute times (the audio's priming must not shift the video); Matroska stores whole ms
        assert out["times"] == pytest.approx(source["times"], abs=1e-3), name
    assert probe(tmp_path / "comp.mp4")["times"] == source["times"]
    with av.open(str(tmp_path / "sheet.png")) as sheet:
        assert next(sheet.decode(video=0)).height > 100
    assert files_under(tmp_path) == ["alpha.webm", "comp.mp4", "fgr.mkv", "sheet.png"]


@pytest.mark.parametrize(("name", "decoder"), [("cut.webm", "libvpx-vp9"), ("cut.mov", None)])
def test_transparent_composition_has_real_alpha(short_clip, tmp_path, name, decoder):
    # FFmpeg's native VP9 decoder drops alpha: decode .webm with libvpx-vp9
    result = convert_video(short_clip, tmp_path / name, background="transparent", downsample_ratio=RATIO,
                           progress=False, preview=tmp_path / "sheet.png")
    out = probe(tmp_path / name, codec=decoder) if decoder else probe_rgba(tmp_path / name)
    assert out["count"] == 6 and result.outputs["preview"].exists()
    alpha = out["frames"][-1][:, :, 3]
    assert (alpha < 16).mean() > 0.2 and (alpha > 240).mean() > 0.1  # background gone, person kept


def probe_rgba(path: Path) -> dict:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgba") for frame in container.decode(video=0)]
    return {"count": len(frames), "frames": frames}


def test_gif_input(tmp_path):
    gif = tmp_path / "clip.gif"
    with av.open(str(gif), "w") as container:
        stream = container.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "rgb8"
        for rgb in read_frames("book", 4):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(160, 120)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    result = convert_video(gif, tmp_path / "out.mp4", progress=False)
    out = probe(tmp_path / "out.mp4")
    assert result.frames == out["count"] == 4 and out["size"] == (160, 120)
    assert result.downsample_ratio == 1.0  # auto: small inputs run at full resolution


def test_transparent_into_mp4_is_refused_naming_containers_that_can(short_clip, tmp_path, capsys):
    assert main(["matte", str(short_clip), "--output-composition", str(tmp_path / "x.mp4"),
                 "--background", "transparent", *QUIET]) == 2
    assert ".webm" in capsys.readouterr().err and files_under(tmp_path) == []


def test_odd_size_input_keeps_its_size(short_clip, tmp_path):
    convert_video(short_clip, tmp_path / "odd.mp4", output_alpha=tmp_path / "alpha", input_resize=(641, 479),
                  downsample_ratio=RATIO, progress=False)
    out = probe(tmp_path / "odd.mp4")
    assert out["size"] == (641, 479) and out["count"] == 6
    assert [a.shape for a in pngs(tmp_path / "alpha")] == [(479, 641)] * 6


def test_phone_video_is_matted_upright_and_written_upright(short_clip, tmp_path):
    phone = write_clip(tmp_path / "from_phone.mp4", read_frames("book", 6), rotation=270, audio=True)
    for name, clip in (("upright", short_clip), ("phone", phone)):
        convert_video(clip, tmp_path / f"{name}.mp4", output_alpha=tmp_path / f"{name}_alpha",
                      downsample_ratio=RATIO, progress=False)
    out = probe(tmp_path / "phone.mp4")
    assert out["size"] == (640, 480) and out["count"] == 6 and out["audio"]
    with av.open(str(tmp_path / "phone.mp4")) as container:
        assert next(container.decode(video=0)).rotation == 0  # nothing left for a player to turn
    upright, turned = pngs(tmp_path / "upright_alpha"), pngs(tmp_path / "phone_alpha")
    assert [a.shape for a in turned] == [(480, 640)] * 6
    # the same person seen the same way; only the input's compression noise differs
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(upright, turned)) < 2


def test_image_folder_and_single_image_inputs(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = read_frames("sister", 3)
    for index, rgb in zip((1, 2, 10), frames, strict=True):  # natural order: 1, 2, 10
        (folder / f"f{index}.png").write_bytes(encode_png(rgb))
    out = tmp_path / "out"
    result = convert_video(folder, out / "comp", output_alpha=out / "alpha.mp4", downsample_ratio=RATIO,
                           progress=False)
    assert result.frames == 3
    assert len(pngs(out / "comp")) == 3 and probe(out / "alpha.mp4")["count"] == 3
    single = convert_video(folder / "f2.png", out / "one", downsample_ratio=RATIO, progress=False)
    assert single.frames == 1 and len(pngs(out / "one")) == 1


def test_trailing_slash_output_is_a_folder_of_frames_whatever_its_name(short_clip, tmp_path, capsys):
    for typed in ("frames.v1/", "clip.mp4/"):
        assert main(["matte", str(short_clip), "--output-alpha", f"{tmp_path}/{typed}", *QUIET]) == 0
        assert len(pngs(tmp_path / typed)) == 6
    assert files_under(tmp_path) == sorted(["clip.mp4", "frames.v1"] + [
        f"{folder}/{index:06d}.png" for folder in ("clip.mp4", "frames.v1") for index in range(6)])


def test_torch_backend_with_seq_chunk_matches_onnxruntime(short_clip, checkpoint, tmp_path):
    pytest.importorskip("torch")
    convert_video(short_clip, output_alpha=tmp_path / "ort", downsample_ratio=RATIO, progress=False)
    result = convert_video(short_clip, output_alpha=tmp_path / "torch", model=checkpoint, seq_chunk=4,
                           downsample_ratio=RATIO, progress=False)
    assert result.backend == "torch"
    for ours, ref in zip(pngs(tmp_path / "torch"), pngs(tmp_path / "ort"), strict=True):
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 2


def test_rvm_style_call_with_a_torch_model_object(short_clip, checkpoint, tmp_path):
    """RVM's own call: convert_video(model, input_source=..., ...), with its argument names and values."""
    torch = pytest.importorskip("torch")
    from rvmkit.weights import load_model

    ours = load_model(checkpoint)
    official_layout = torch.nn.Module()  # another class with the official module names, as RVM's is
    for name, child in ours.named_children():
        official_layout.add_module(name, child)
    convert_video(short_clip, output_alpha=tmp_path / "pth", model=checkpoint, downsample_ratio=RATIO,
                  seq_chunk=3, progress=False)
    for name, model in (("ours", ours), ("official", official_layout)):
        result = convert_video(model, input_source=str(short_clip), input_resize=None, downsample_ratio=RATIO,
                               output_type="png_sequence", output_alpha=str(tmp_path / name),
                               output_composition=str(tmp_path / f"{name}_com"), output_video_mbps=None,
                               seq_chunk=3, num_workers=0, progress=False, device=None, dtype=torch.float32)
        assert result.backend == "torch" and result.frames == 6
        for got, want in zip(pngs(tmp_path / name), pngs(tmp_path / "pth"), strict=True):
            np.testing.assert_array_equal(got, want)  # the very weights of the .pth


@pytest.mark.parametrize("kwargs, message", [
    ({"input_resize": "640x480"}, "input_resize must be (width, height)"),
    ({"input_resize": ("160", "120")}, "input_resize must be a number"),
    ({"overwrite": "no"}, "overwrite must be True or False"),
    ({"progress": "yes"}, "progress must be True or False"),
    ({"output_alpha": 5}, "output_alpha must be a path"),
    ({"seq_chunk": None}, "seq_chunk must be a whole number"),
    ({"crf": "18"}, "crf must be a whole number"),
    ({"output_video_mbps": "4"}, "output_video_mbps must be a number"),
    ({"background": (0, 0, 300)}, "background must be"),
    ({"input_source": "again.mp4"}, "the input was given twice"),
    ({"model": 123}, "expected a model file path or a torch model object"),
])
def test_api_misuse_is_named_before_any_work(short_clip, tmp_path, kwargs, message):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"precious")
    arguments = {"output_composition": target, "progress": False, **kwargs}
    with pytest.raises((TypeError, RvmkitError), match=re.escape(message)):
        convert_video(short_clip, **arguments)
    assert target.read_bytes() == b"precious" and files_under(tmp_path) == ["out.mp4"]


def test_background_as_an_rgb_tuple_and_quality_flags_need_a_video_output(short_clip, tmp_path):
    convert_video(short_clip, output_composition=tmp_path / "blue", output_alpha=tmp_path / "alpha",
                  background=(0, 0, 255), downsample_ratio=RATIO, progress=False)
    composition, alpha = pngs(tmp_path / "blue")[0], pngs(tmp_path / "alpha")[0]
    assert (composition[alpha == 0] == (0, 0, 255)).all()
    with pytest.raises(RvmkitError, match="every output here is a PNG sequence"):
        convert_video(short_clip, output_alpha=tmp_path / "again", output_video_mbps=4, progress=False)


def test_existing_output_is_replaced_only_with_overwrite(short_clip, tmp_path, capsys):
    target = tmp_path / "comp.mp4"
    target.write_bytes(b"precious")
    args = ["matte", str(short_clip), "--output-composition", str(target), *QUIET]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and target.read_bytes() == b"precious"
    assert main([*args, "--overwrite"]) == 0
    assert probe(target)["count"] == 6 and files_under(tmp_path) == ["comp.mp4"]


def _non_rvm_onnx(path: Path) -> Path:
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), str(path))
    return path


def _truncated(path: Path) -> Path:
    data = CLIPS["book"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_CASES = {
    "missing input": (lambda d: ["matte", str(d / "nope.mp4")], "no such input file"),
    "empty input": (lambda d: ["matte", str(_write(d / "empty.mp4", b""))], "is empty"),
    "not a video": (lambda d: ["matte", str(_write(d / "notes.mp4", b"hello, not a video\n" * 50))],
                    "not a readable video"),
    "truncated input": (lambda d: ["matte", str(_truncated(d / "cut.mkv"))], "truncated"),
    "empty folder": (lambda d: ["matte", str(_mkdir(d / "nothing"))], "no images"),
    "ratio zero": (lambda d: ["matte", str(CLIPS["milk"]), "--downsample-ratio", "0"], "downsample ratio"),
    "ratio above one": (lambda d: ["matte", str(CLIPS["milk"]), "--downsample-ratio", "1.5"],
                        "downsample ratio"),
    "ratio not a number": (lambda d: ["matte", str(CLIPS["milk"]), "--downsample-ratio", "big"],
                           "downsample ratio"),
    "non-RVM model": (lambda d: ["matte", str(CLIPS["milk"]), "--model", str(_non_rvm_onnx(d / "m.onnx"))],
                      "not an RVM matting ONNX"),
    "missing model": (lambda d: ["matte", str(CLIPS["milk"]), "--model", str(d / "m.onnx")], "no such model"),
    "unknown output type": (lambda d: ["matte", str(CLIPS["milk"]), "--output-composition", str(d / "o.avi")],
                            "unknown video type"),
    "output is the input": (lambda d: ["matte", str(_copy_clip(d)), "--output-composition", str(d / "in.mkv"),
                                       "--overwrite"], "output is the input"),
    "ratio leaves no pixel": (lambda d: ["matte", str(write_clip(d / "tiny.mp4", read_frames("milk", 2),
                                                                size=(6, 4))), "--downsample-ratio", "0.1"],
                              "shrinks its 6x4 frames to nothing"),
    "bitrate not finite": (lambda d: ["matte", str(CLIPS["milk"]), "--output-video-mbps", "inf"],
                           "output video mbps inf"),
    "crf and bitrate both": (lambda d: ["matte", str(CLIPS["milk"]), "--output-video-mbps", "4",
                                        "--crf", "20"], "not both"),
    "crf beyond H.264": (lambda d: ["matte", str(CLIPS["milk"]), "--crf", "60"],
                         "crf 60: beyond H.264's 0 to 51"),
    "huge input resize": (lambda d: ["matte", str(CLIPS["milk"]), "--input-resize", "99999", "99999"],
                          "from 1 to 16384"),
    "variant without a checkpoint": (lambda d: ["matte", str(CLIPS["milk"]), "--variant", "resnet50"],
                                     "resnet50"),
    "bad background": (lambda d: ["matte", str(CLIPS["milk"]), "--output-composition", str(d / "o.mp4"),
                                  "--background", "plaid"], "background 'plaid'"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _copy_clip(folder: Path) -> Path:
    return _write(folder / "in.mkv", CLIPS["milk"].read_bytes())


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    build, expected = BAD_CASES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = build(inputs)
    before = files_under(tmp_path)
    out = tmp_path / "out"
    if not {"--output-composition", "--output-alpha", "--output-foreground"} & set(args):
        args += ["--output-composition", str(out / "comp.mp4"), "--output-alpha", str(out / "alpha")]
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rvmkit: error: ") and expected in err, err
    assert "Traceback" not in err
    assert files_under(tmp_path) == before  # no outputs, no temporaries, no new folders


def test_no_output_requested_is_an_error(capsys):
    assert main(["matte", str(CLIPS["milk"])]) == 2
    assert "no output requested" in capsys.readouterr().err
    with pytest.raises(RvmkitError, match="no output requested"):
        convert_video(CLIPS["milk"])


def test_baked_model_refuses_another_ratio_and_runs_its_own(short_clip, baked_onnx, tmp_path, capsys):
    args = ["matte", str(short_clip), "--model", str(baked_onnx), "--output-alpha", str(tmp_path / "baked"),
            "--quiet"]
    assert main([*args, "--downsample-ratio", "0.5"]) == 2
    assert "0.25 is baked into this model" in capsys.readouterr().err and files_under(tmp_path) == []
    assert main(args) == 0  # auto: the baked 0.25
    convert_video(short_clip, output_alpha=tmp_path / "official", downsample_ratio=0.25, progress=False)
    for ours, ref in zip(pngs(tmp_path / "baked"), pngs(tmp_path / "official"), strict=True):
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


@pytest.fixture()
def interrupt_at_third_frame(monkeypatch):
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend  # the default CPU path runs `infer`

    calls = {"n": 0}

    def interrupting(original):
        def wrapper(self, *args):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return original(self, *args)
        return wrapper

    monkeypatch.setattr(OnnxRuntimeBackend, "step", interrupting(OnnxRuntimeBackend.step))
    monkeypatch.setattr(FastOnnxRuntimeBackend, "infer", interrupting(FastOnnxRuntimeBackend.infer))
    return calls


def test_interrupted_run_leaves_nothing_behind(short_clip, tmp_path, capsys, interrupt_at_third_frame):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["matte", str(short_clip), "--output-composition", str(out / "c.mp4"), "--output-alpha",
                 str(out / "a"), "--output-foreground", str(out / "f.webm"), "--preview", str(out / "p.png"),
                 *QUIET])
    assert code == 130 and interrupt_at_third_frame["n"] == 3
    assert "interrupted" in capsys.readouterr().err
    assert files_under(out) == []


def test_decode_failure_mid_stream_stops_and_removes_partial_outputs(short_clip, tmp_path, monkeypatch):
    from rvmkit.video import reader

    original = reader.VideoFileSource.__iter__

    def failing(self):
        for frame in original(self):
            if frame.index == 4:
                raise RvmkitError(f"'{self.path}': frame 4 could not be decoded (Invalid data)")
            yield frame

    monkeypatch.setattr(reader.VideoFileSource, "__iter__", failing)
    with pytest.raises(RvmkitError, match="frame 4 could not be decoded"):
        convert_video(short_clip, tmp_path / "c.mp4", tmp_path / "a", downsample_ratio=RATIO, progress=False)
    assert files_under(tmp_path) == []


def test_unwritable_preview_folder_is_refused_before_any_work(short_clip, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access  # chmod does not stop root: answer as the system would for a user
    monkeypatch.setattr(os, "access",
                        lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend

    for backend, method in ((OnnxRuntimeBackend, "step"), (FastOnnxRuntimeBackend, "infer")):
        monkeypatch.setattr(backend, method, lambda *a: pytest.fail("inference started"))
    code = main(["matte", str(short_clip), "--output-alpha", str(tmp_path / "alpha.mp4"),
                 "--preview", str(locked / "sheet.png"), *QUIET])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "sheet.png" in err and "not writable" in err
    assert files_under(tmp_path) == ["locked"]


def test_interlaced_input_is_matted_whole_with_a_note(tmp_path, capsys):
    clip = write_clip(tmp_path / "broadcast.mp4", read_frames("milk", 4), interlaced=True)
    assert main(["matte", str(clip), "--output-alpha", str(tmp_path / "alpha.mp4"), "--downsample-ratio",
                 RATIO]) == 0
    err = capsys.readouterr().err
    assert "note: " in err and "is interlaced" in err and "bwdif" in err
    assert probe(tmp_path / "alpha.mp4")["count"] == 4  # nothing dropped or doubled
    assert main(["matte", str(CLIPS["milk"]), "--output-alpha", str(tmp_path / "progressive.mp4"),
                 "--input-resize", "160", "120", "--downsample-ratio", RATIO]) == 0
    assert "interlaced" not in capsys.readouterr().err  # the real (progressive) clips get no note
    plain = main(["matte", str(clip), "--output-alpha", str(tmp_path / "again.mp4"), *QUIET])
    assert plain == 0 and capsys.readouterr().err == ""  # --quiet: no note either
