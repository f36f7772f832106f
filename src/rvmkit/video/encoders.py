"""Every FFmpeg encoder and muxer setting rvmkit writes with, in one table, and the rules that choose them.

One place for x264 (file at a bitrate, file at a quality, grey mattes, live streams, recordings, the
benchmark's reference clips), VP9, ProRes, FFV1 (batch segments) and the one-image encoders, so a file, a
stream and a segment never drift apart (issue 21). Sinks ask `video_settings` / `stream_settings` /
`recording_options`; nothing else spells an encoder option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

#: (codec, use) -> options. Uses: "bitrate" and "bitrate_low_bpp" (a file at --output-video-mbps, by bits
#: per pixel), "quality" (a file at a CRF),
#: "matte" (a grey alpha matte at a bitrate), "stream" (a live network stream), "base" (always),
#: "alpha" (a transparent output), "reference" (the benchmark's high-quality inputs), "segment" (FFV1).
ENCODERS: dict[tuple[str, str], dict[str, str]] = {
    # compositions at a bitrate: x264 with auto-variance AQ and the macroblock-tree rate control over the
    # naive loop's (medium's) 40-frame lookahead, preset by `x264_bitrate_options`' rule (issue 22,
    # benchmarks/quality.py). Superfast alone drops mbtree and lost 5.6 dB to the naive loop on a busy
    # static background; with it, at 0.145 bits per pixel and up every clip there is within 0.2 dB
    ("libx264", "bitrate"): {"preset": "superfast", "x264-params": "aq-mode=2:mbtree=1:rc-lookahead=40"},
    # ... and below LOW_BPP bits per pixel (1080p30 at 4 Mbps is 0.064), preset fast: fast motion over a
    # busy pan lost 0.37 dB with veryfast and 0.34 with faster, 0.06 dB over it with fast (RD mode decision)
    ("libx264", "bitrate_low_bpp"): {"preset": "fast", "x264-params": "aq-mode=2:rc-lookahead=40"},
    # quality mode (no bitrate asked): veryfast with auto-variance AQ at CRF 18, where a faster preset
    # would cost file size rather than quality
    ("libx264", "quality"): {"crf": "18", "preset": "veryfast", "x264-params": "aq-mode=2"},
    # a grey alpha matte at a fixed bitrate: x264 ultrafast. At 4 Mbps on that footage its PSNR equals the
    # medium preset's (63.5 dB) for 0.4x veryfast's CPU time, which on 2 cores goes to inference instead
    ("libx264", "matte"): {"preset": "ultrafast", "x264-params": "aq-mode=0"},
    # live: no B-frames, no lookahead (a frame leaves when it is encoded), headers before every IDR so a
    # receiver can join at any moment
    ("libx264", "stream"): {"preset": "veryfast", "tune": "zerolatency", "forced-idr": "1",
                            "x264-params": "repeat-headers=1"},
    ("libx264", "reference"): {"preset": "veryfast"},
    ("libvpx-vp9", "base"): {"row-mt": "1", "cpu-used": "4", "deadline": "good"},
    ("libvpx-vp9", "quality"): {"crf": "30", "b": "0"},
    ("libvpx-vp9", "alpha"): {"auto-alt-ref": "0"},
    ("prores_ks", "base"): {"vendor": "apl0"},
    ("prores_ks", "alpha"): {"alpha_bits": "16"},
    ("ffv1", "segment"): {"slices": "4", "threads": "1"},
}
#: one-image outputs (a photo in, a photo out): suffix -> (encoder, its pixel formats for 1, 3, 4 channels,
#: encoder options). PNG, lossless WebP and deflate TIFF are exact and carry alpha; JPEG does not
IMAGE_OUTPUTS = {
    ".png": ("png", {1: "gray", 3: "rgb24", 4: "rgba"}, {}),
    ".webp": ("libwebp", {1: "bgra", 3: "bgra", 4: "bgra"}, {"lossless": "1"}),
    ".tif": ("tiff", {1: "gray", 3: "rgb24", 4: "rgba"}, {"compression_algo": "deflate"}),
    ".tiff": ("tiff", {1: "gray", 3: "rgb24", 4: "rgba"}, {"compression_algo": "deflate"}),
    ".jpg": ("mjpeg", {1: "yuvj444p", 3: "yuvj444p"}, {"qmin": "1", "qmax": "2"}),
    ".jpeg": ("mjpeg", {1: "yuvj444p", 3: "yuvj444p"}, {"qmin": "1", "qmax": "2"}),
}
#: muxer -> options. Files: by default FFmpeg shifts every Matroska/WebM stream until the earliest packet is
#: at 0: copied AAC starts with a priming packet at -1024 samples, which moved the whole video by +21 ms. A
#: block's time is a signed offset from its cluster's, and FFmpeg writes and reads such negative times
#: exactly, so keep every timestamp as given. Streams: MPEG-TS packets carry their PES length; every packet
#: leaves when written.
MUXERS: dict[str, dict[str, str]] = {
    "matroska": {"avoid_negative_ts": "disabled"}, "webm": {"avoid_negative_ts": "disabled"},
    "mpegts": {"omit_video_pes_length": "0", "flush_packets": "1"},
    "flv": {"flvflags": "no_duration_filesize", "flush_packets": "1"},
}
#: muxer settings of live recordings, so that a file whose run was killed (SIGKILL, power loss) is playable
#: up to its last written frame: MP4 and QuickTime fragmented (a moof per frame: no index is needed at
#: the end), Matroska and WebM one cluster per frame; each packet reaches the file when muxed
KILL_SAFE_MUXING = {
    "mp4": {"movflags": "frag_every_frame+empty_moov+default_base_moof", "flush_packets": "1"},
    "mov": {"movflags": "frag_every_frame+empty_moov+default_base_moof", "flush_packets": "1"},
    "matroska": {"cluster_time_limit": "0", "flush_packets": "1"},
    "webm": {"cluster_time_limit": "0", "flush_packets": "1"},
}
LOW_BPP = 0.1
STREAM_CRF = 21
#: the stream encoder's threads (0: x264 chooses, 1.5 per core)
ENCODE_THREADS = 0
PRORES_HQ, PRORES_4444 = 3, 4
SEGMENT_CODEC, SEGMENT_MUXER = "ffv1", "nut"


@dataclass
class Settings:
    """What to set on a codec context: its pixel format, options and (at a bitrate) bit_rate."""

    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    bit_rate: int | None = None


def x264_pixel_format(width: int, height: int) -> str:
    """yuv420p, or yuv444p when the width or height is odd, so nothing is cropped or padded."""
    return "yuv444p" if width % 2 or height % 2 else "yuv420p"


def x264_bitrate_options(width: int, height: int, fps: Fraction | float, mbps: float) -> dict[str, str]:
    """x264 options for a composition at `mbps`: the fewer bits each pixel gets, the more a slower preset's
    motion search and mode decision are worth (fast motion at 1080p30 4 Mbps needs fast to stay within
    0.2 dB of the naive loop's medium); with bits to spare superfast is as good for 0.4x the encoder CPU."""
    bits_per_pixel = mbps * 1e6 / (width * height * float(fps or 30))
    return dict(ENCODERS["libx264", "bitrate_low_bpp" if bits_per_pixel < LOW_BPP else "bitrate"])


def video_settings(codec: str, width: int, height: int, fps: Fraction, *, alpha: bool, mbps: float | None,
                   crf: int | None, extra: dict[str, str] | None = None) -> Settings:
    """A video file's encoder settings: `mbps` sets the bitrate (for ProRes, the bits per macroblock that
    give it), else `crf`, else each codec's quality default; `extra` (the caller's) comes last."""
    if codec == "libx264":
        options = x264_bitrate_options(width, height, fps, mbps) if mbps else dict(ENCODERS[codec, "quality"])
        settings = Settings(x264_pixel_format(width, height), options)
        if crf is not None and not mbps:
            settings.options["crf"] = str(crf)
    elif codec == "libvpx-vp9":
        settings = Settings("yuva420p" if alpha else "yuv420p", dict(ENCODERS[codec, "base"]))
        if not mbps:
            settings.options.update(ENCODERS[codec, "quality"])
            if crf is not None:
                settings.options["crf"] = str(crf)
        if alpha:
            settings.options.update(ENCODERS[codec, "alpha"])
    else:  # prores_ks
        settings = Settings("yuva444p10le" if alpha else "yuv422p10le",
                            {"profile": str(PRORES_4444 if alpha else PRORES_HQ), **ENCODERS[codec, "base"]})
        if mbps:
            macroblocks = ((width + 15) // 16) * ((height + 15) // 16)
            settings.options["bits_per_mb"] = str(max(1, int(mbps * 1e6 / float(fps) / macroblocks)))
            mbps = None
        if alpha:
            settings.options.update(ENCODERS[codec, "alpha"])
    if mbps:
        settings.bit_rate = int(mbps * 1e6)
    settings.options.update(extra or {})
    return settings


def matte_options(codec: str, mbps: float | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A grey alpha matte's extra options: x264's cheaper matte settings at a bitrate, then `extra`."""
    base = ENCODERS["libx264", "matte"] if codec == "libx264" and mbps else {}
    return {**base, **(extra or {})}


def stream_settings(width: int, height: int, fps: Fraction, mbps: float | None, crf: int | None) -> Settings:
    """A live H.264 stream's settings: low latency, a GOP of ten seconds (IDRs are forced by time), a
    capped rate at a bitrate, else CRF (STREAM_CRF by default)."""
    options = {**ENCODERS["libx264", "stream"], "g": str(max(1, round(10 * float(fps))))}
    settings = Settings(x264_pixel_format(width, height), options)
    if mbps:
        settings.bit_rate = int(mbps * 1e6)
        options.update({"maxrate": str(int(mbps * 1e6)), "bufsize": str(int(mbps * 1e6))})
    else:
        options["crf"] = str(crf if crf is not None else STREAM_CRF)
    return settings


def recording_options(codec: str, fmt: str, fps: float, *, matte: bool, mbps: float | None) -> dict[str, str]:
    """A live recording's extra options: a keyframe every second (what a killed run loses in the encoder,
    and how a recording is seeked); no B-frames in a fragmented mp4 (a fragment cannot shift their delay
    away, so the first frame stays at 0); a matte's settings as a file's."""
    options = {"g": str(max(1, round(fps)))}
    if codec == "libx264" and fmt == "mp4":
        options["bf"] = "0"
    return matte_options(codec, mbps, options) if matte else options


def reference_options(crf: int) -> dict[str, str]:
    """The benchmark's high-quality H.264 inputs (x264 at `crf`, veryfast)."""
    return {"crf": str(crf), **ENCODERS["libx264", "reference"]}
