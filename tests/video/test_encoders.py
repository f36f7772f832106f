"""The one table of encoder settings (`rvmkit.video.encoders`): each sink's settings come from it, and
the files they give are what the settings say (probed with FFmpeg on a real clip's frames)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from conftest import read_frames
from rvmkit.video import encoders
from rvmkit.video.encoders import recording_options, stream_settings, video_settings


def test_odd_sizes_keep_every_pixel_with_yuv444p_for_files_and_streams():
    odd = video_settings("libx264", 161, 120, Fraction(30), alpha=False, mbps=None, crf=None)
    assert odd.pix_fmt == "yuv444p"
    assert stream_settings(160, 121, Fraction(30), None, None).pix_fmt == "yuv444p"
    assert stream_settings(160, 120, Fraction(30), None, None).pix_fmt == "yuv420p"


def test_quality_and_bitrate_modes():
    quality = video_settings("libx264", 64, 48, Fraction(30), alpha=False, mbps=None, crf=23)
    assert quality.options["crf"] == "23" and quality.bit_rate is None
    rate = video_settings("libx264", 64, 48, Fraction(30), alpha=False, mbps=2.0, crf=None)
    assert "crf" not in rate.options and rate.bit_rate == 2_000_000
    prores = video_settings("prores_ks", 64, 48, Fraction(30), alpha=True, mbps=2.0, crf=None)
    assert prores.bit_rate is None and prores.pix_fmt == "yuva444p10le"
    assert int(prores.options["bits_per_mb"]) == int(2e6 / 30 / 12) and prores.options["alpha_bits"] == "16"
    stream = stream_settings(64, 48, Fraction(25), 1.5, None)
    assert stream.options["maxrate"] == stream.options["bufsize"] == "1500000"
    assert stream.options["g"] == "250" and stream.bit_rate == 1_500_000


def test_a_matte_recording_gets_the_matte_settings_and_a_keyframe_every_second():
    options = recording_options("libx264", "mp4", 25.0, matte=True, mbps=2.0)
    assert options == {**encoders.ENCODERS["libx264", "matte"], "g": "25", "bf": "0"}
    assert recording_options("libvpx-vp9", "webm", 30.0, matte=True, mbps=2.0) == {"g": "30"}


def test_the_settings_reach_the_file(tmp_path):
    """Frames of a real clip encoded with the table's stream settings: FFmpeg reads back its pixel
    format and GOP-forced keyframes only where forced (the first)."""
    frames = [rgb[:121, :160] for rgb in read_frames("milk", 5)]
    settings = stream_settings(160, 121, Fraction(30), None, None)
    path = tmp_path / "s.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 121, settings.pix_fmt
        stream.options = settings.options
        for rgb in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        out.mux(stream.encode(None))
    with av.open(str(path)) as back:
        decoded = list(back.decode(video=0))
        assert back.streams.video[0].codec_context.pix_fmt == "yuv444p"
    assert len(decoded) == 5 and [f.key_frame for f in decoded] == [True, False, False, False, False]
