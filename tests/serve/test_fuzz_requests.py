"""Property/fuzz suite over requests to a real `rvmkit serve`: random multipart parts (known, unknown and
repeated names, files where text belongs and text where files do, real clips, junk, huge or absurd
numbers), random content types and headers. Every request gets a 202 or a documented 4xx with a JSON
`detail`, never a 500 or a traceback, and a refused request leaves no file behind.

Fast in CI (fixed seed, few examples); RVMKIT_FUZZ_EXAMPLES=500 runs longer."""

from __future__ import annotations

import pytest
from fuzz_media import fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st
from serve.serving import Server, files_under, make_clip

pytestmark = pytest.mark.slow  # a Hypothesis suite against a real server

DOCUMENTED = {400, 403, 413, 422, 429, 507}
FIELDS = ["file", "background_file", "outputs", "background", "downsample_ratio", "format", "video",
          "", "file[]", "Outputs"]
NUMBERS = ["0", "-1", "1", "0.5", "1e309", "-1e309", "nan", "inf", "1e-320", "0x10", "auto", " 0.25 ",
           "99999999999999999999", "", "½"]
TEXTS = ["composition", "alpha,foreground", "composition,composition", "bogus", "mp4", "webm", "png",
         "avi", "transparent", "#00ff00", "#zzzzzz", "300,0,0", "/etc/passwd", "é" * 30, "\x00", "a" * 70_000]

GOOD = {"outputs": ["composition", "alpha,foreground"], "background": ["#00ff00", "red"],
        "downsample_ratio": ["0.5", "auto", "1"], "format": ["mp4", "webm", "png"]}
EXTRA_HEADERS = [{"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"},
                 {"Sec-Fetch-Site": "same-origin"}, {"Host": "evil.test"}, {"Authorization": "Bearer x"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-serve")
    clip = make_clip(folder / "clip.mp4", 4, size=(64, 48), audio=False).read_bytes()
    server = Server(folder / "data", "--workers", "1", "--max-upload-mb", "0.2", "--max-frames", "30",
                    "--max-queued", "2").start()
    yield server, clip
    server.stop()


def _part(name: str, filename: str | None, data: bytes) -> bytes:
    disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
    return f"--B\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """Half of them well formed (the clip as 'file', then option fields with random values), half
    anything."""
    if draw(st.booleans()):
        options = {name: draw(st.sampled_from(good) | st.sampled_from(NUMBERS + TEXTS[:-1]))
                   for name, good in GOOD.items() if draw(st.booleans())}
        parts = [_part("file", "clip.mp4", b"CLIP")]
        parts += [_part(name, None, value.encode()) for name, value in options.items()]
        return {"Content-Type": "multipart/form-data; boundary=B"}, b"".join(parts) + b"--B--\r\n"
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(FIELDS))
        filename = draw(st.one_of(st.none(), st.sampled_from(["clip.mp4", "..", "a" * 300, "bg.png", ""])))
        data = draw(st.one_of(st.sampled_from([b"CLIP", b"", b"junk" * 10, b"\0" * 250_000]),
                              st.sampled_from(NUMBERS + TEXTS).map(str.encode),
                              st.binary(max_size=64)))
        parts.append(_part(name, filename, data))
    body = b"".join(parts) + draw(st.sampled_from([b"--B--\r\n", b"", b"--B", b"garbage"]))
    content_type = draw(st.sampled_from(["multipart/form-data; boundary=B", "multipart/form-data",
                                         "application/json", "text/plain; boundary=B", ""]))
    headers = {"Content-Type": content_type} if content_type else {}
    if draw(st.booleans()):
        headers.update(draw(st.sampled_from(EXTRA_HEADERS)))
    return headers, body


@fuzz_settings(25)
@given(request=requests())
def test_any_request_gets_202_or_a_documented_4xx_and_refusals_store_nothing(served, request):
    server, clip = served
    headers, body = request
    body = body.replace(b"CLIP", clip)
    client = server.client(timeout=60)
    before = files_under(server.data_dir / "jobs")
    response = client.post("/api/jobs", content=body, headers=headers)
    event(f"status {response.status_code}")
    assert response.status_code == 202 or response.status_code in DOCUMENTED, response.text
    if response.status_code == 202:
        job = response.json()["id"]
        assert client.delete(f"/api/jobs/{job}").status_code in (200, 204)
        client.delete(f"/api/jobs/{job}")
        assert not (server.data_dir / "jobs" / job).exists()
    else:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "Traceback" not in detail and str(server.data_dir) not in detail
    assert files_under(server.data_dir / "jobs") == before
    assert "Traceback" not in server.log.read_text(errors="replace")
