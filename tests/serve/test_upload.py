"""Streaming uploads: straight to disk under the service's names, the size limit enforced as bytes
arrive, client names reduced to something to display."""

from __future__ import annotations

import asyncio

import pytest

from rvmkit.serve.upload import UploadError, display_name, receive, safe_suffix

BOUNDARY = "XyZ"
TEXT = ("outputs", "format")


def body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def chunked(data: bytes, size: int = 1000):
    async def stream():
        for start in range(0, len(data), size):
            yield data[start:start + size]
    return stream()


def run(data: bytes, folder, limit: int = 10**6, seen: list | None = None):
    async def stream():
        for start in range(0, len(data), 1000):
            if seen is not None:
                seen.append(start)
            yield data[start:start + 1000]
    return asyncio.run(receive(stream(), f"multipart/form-data; boundary={BOUNDARY}", folder,
                               {"file": "input", "background_file": "background"}, TEXT, limit))


def test_file_goes_to_the_services_name_and_fields_are_read(tmp_path):
    video = bytes(range(256)) * 40
    upload = run(body([("outputs", None, b"alpha"), ("file", "../../My Clip.MP4", video)]), tmp_path)
    saved = upload.files["file"]
    assert saved.path == tmp_path / "input.mp4" and saved.path.read_bytes() == video
    assert saved.name == "My Clip.MP4" and saved.size == len(video)
    assert upload.fields == {"outputs": "alpha"}
    assert [p.name for p in tmp_path.iterdir()] == ["input.mp4"]


def test_the_size_limit_stops_reading_as_soon_as_it_is_passed(tmp_path):
    data = body([("file", "big.mp4", b"\0" * 50_000)])
    seen: list[int] = []
    with pytest.raises(UploadError) as refused:
        run(data, tmp_path, limit=5_000, seen=seen)
    assert refused.value.status == 413 and refused.value.extra == {"limit": "upload_size"}
    assert len(seen) < 10  # stopped a few chunks past the limit, not at the end of 50 kB
    assert (tmp_path / "input.mp4").stat().st_size <= 5_000


def test_not_multipart_is_422(tmp_path):
    with pytest.raises(UploadError) as refused:
        asyncio.run(receive(chunked(b"{}"), "application/json", tmp_path, {"file": "input"}, TEXT, 100))
    assert refused.value.status == 422


def test_the_limit_is_for_the_whole_request_not_each_file(tmp_path):
    parts = [("file", "clip.mp4", b"\1" * 4_000), ("background_file", "bg.png", b"\2" * 4_000)]
    with pytest.raises(UploadError) as refused:
        run(body(parts), tmp_path, limit=6_000)  # each part is under the limit, the two are over it
    assert refused.value.status == 413


@pytest.mark.parametrize("parts, detail", [
    ([("file", "a.mp4", b"v"), ("file", "b.mp4", b"w" * 900)], "'file' is given more than once"),
    ([("file", "a.mp4", b"v"), ("extra", "b.mp4", b"w" * 900)],
     "unexpected file field 'extra': send the video as the multipart file field 'file'"),
    ([("video", "x.mp4", b"v" * 90_000)], "send the video as the multipart file field 'file'"),
    ([("outputs", None, b"alpha"), ("outputs", None, b"alpha")], "'outputs' is given more than once"),
    ([("outputs", "o.txt", b"alpha")], "'outputs' must be text, not a file"),
    ([("file", None, b"not a file part")], "'file' must be a file"),
    ([("colour", None, b"red")], "unexpected form field 'colour'"),
])
def test_unexpected_or_repeated_parts_are_refused_before_they_are_stored(tmp_path, parts, detail):
    with pytest.raises(UploadError) as refused:
        run(body(parts), tmp_path)
    assert refused.value.status == 422 and detail in str(refused.value)
    stored = sorted(p.name for p in tmp_path.iterdir())
    assert stored in ([], ["input.mp4"]) and all(p.stat().st_size <= 1 for p in tmp_path.iterdir())


@pytest.mark.parametrize("raw, shown, suffix", [
    ("../../x.mp4", "x.mp4", ".mp4"), ("C:\\Users\\me\\clip.MOV", "clip.MOV", ".mov"),
    ("", "upload", ""), ("clip.mp4/../../../etc/passwd", "passwd", ""), ("a.$(rm -rf)", "a.$(rm -rf)", ""),
])
def test_client_names_are_for_display_only(raw, shown, suffix):
    assert display_name(raw) == shown
    assert safe_suffix(display_name(raw)) == suffix
