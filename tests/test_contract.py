"""`rvmkit.contract`: the downsample-ratio rules (parse, auto, resolve, one tolerance) and their sizes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import rvmkit
from rvmkit.contract import (
    RATIO_TOLERANCE,
    auto_downsample_ratio,
    downsampled,
    live_auto_ratio,
    parse_ratio,
    resolve_ratio,
    same_ratio,
    state_sizes,
    validate_ratio,
)
from rvmkit.errors import RvmkitError


@pytest.mark.parametrize(("size", "expected"), [
    ((3840, 2160), 512 / 3840), ((1920, 1080), 512 / 1920), ((1080, 1920), 512 / 1920), ((1280, 720), 0.4),
    ((640, 480), 0.8), ((512, 512), 1.0), ((320, 240), 1.0), ((513, 100), 512 / 513)])
def test_auto_ratio_puts_the_long_side_near_512(size, expected):
    ratio = auto_downsample_ratio(*size)
    assert math.isclose(ratio, expected)
    assert max(size) * ratio <= 512 + 1e-9


@pytest.mark.parametrize(("size", "expected"), [
    ((640, 480), 0.5), ((1280, 720), 0.25), ((720, 1280), 0.25), ((1920, 1080), 320 / 1920),
    ((320, 200), 1.0), ((160, 120), 1.0)])
def test_live_auto_ratio_gives_the_network_a_long_side_of_320(size, expected):
    ratio = live_auto_ratio(*size)
    assert math.isclose(ratio, expected)
    assert max(size) * ratio <= 320 + 1e-9
    with pytest.raises(RvmkitError, match="frame size 0x480"):
        live_auto_ratio(0, 480)


@pytest.mark.parametrize("bad", ["0", "-0.5", "1.5", "nan", "inf", "fast", ""])
def test_bad_ratio_is_a_one_line_error(bad):
    with pytest.raises(RvmkitError, match="downsample ratio") as info:
        parse_ratio(bad)
    assert "\n" not in str(info.value)


def test_ratio_auto_and_numbers():
    assert parse_ratio("auto") is None and parse_ratio(None) is None
    assert parse_ratio("0.25") == 0.25 and parse_ratio(1) == 1.0
    assert resolve_ratio("auto", 1920, 1080) == pytest.approx(0.2667, abs=1e-4)
    assert resolve_ratio(0.5, 1920, 1080) == 0.5


def test_a_ratio_that_leaves_no_pixel_is_refused_auto_included():
    with pytest.raises(RvmkitError, match="shrinks its 2048x2 frames to nothing; use a larger ratio"):
        resolve_ratio("auto", 2048, 2, input_label="strip.png")  # auto: 0.25 of 2 rows is none
    with pytest.raises(RvmkitError, match="ratio is baked in"):
        resolve_ratio(None, 3, 2, baked=0.25)
    assert resolve_ratio(1, 2048, 2) == 1.0


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, float("nan"), float("inf")])
def test_validate_ratio_refuses_what_parse_ratio_refuses_without_auto(bad):
    with pytest.raises(RvmkitError, match=r"downsample ratio .*: must be > 0 and <= 1$"):
        validate_ratio(bad)
    with pytest.raises(RvmkitError, match=r"must be > 0 and <= 1 \(or 'auto'\)$"):
        parse_ratio(bad)
    assert validate_ratio("0.5") == 0.5 and validate_ratio(1) == 1.0


def test_a_ratio_stored_as_float32_is_the_same_ratio_and_a_different_one_is_not():
    for ratio in (0.25, 0.267, 512 / 1920, 0.4, 0.133):
        assert same_ratio(float(np.float32(ratio)), ratio)  # a graph's scales are float32
    assert same_ratio(0.26667, 512 / 1920)  # typed with five digits
    assert not same_ratio(0.25, 0.26) and not same_ratio(0.5, 0.5 * (1 + 3 * RATIO_TOLERANCE))
    assert resolve_ratio("0.267", 1920, 1080, baked=float(np.float32(0.267))) == float(np.float32(0.267))


def test_downsampled_and_state_sizes_round_as_the_network_does():
    assert downsampled(1080, 1.0) == 1080 and downsampled(1080, 0.25) == 270 and downsampled(3, 0.25) == 0
    assert downsampled(1920, 512 / 1920) == 512
    # ceil(d / 2) per level from the downsampled frame: 479x641 at 0.25 is 119x160 -> 60x80, 30x40, ...
    assert state_sizes(479, 641, 0.25) == [(60, 80), (30, 40), (15, 20), (8, 10)]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("seq_chunk", 10**9, "seq chunk 1000000000: must be a whole number from 1 to 64"),
    ("seq_chunk", 0, "seq chunk 0: must be a whole number from 1 to 64"),
    ("seq_chunk", 2.5, "seq chunk 2.5: must be a whole number"),
    ("output_video_mbps", 1e9, "output video mbps 1000000000.0: must be a number from 0.01 to 1000"),
    ("output_video_mbps", float("nan"), "output video mbps nan"),
    ("input_resize", 100000, "input resize 100000: must be a whole number from 1 to 16384"),
    ("num_workers", 10**6, "num workers 1000000: must be a whole number from 1 to 4096"),
    ("segments", 0, "segments 0"), ("warmup", -1, "warm-up -1"), ("crf", "x", "crf x"),
])
def test_every_numeric_option_has_one_range_named_in_one_line(name, value, message):
    from rvmkit.contract import check_limit

    with pytest.raises(RvmkitError, match=re.escape(message)):
        check_limit(name, value)


def test_a_ratio_that_shrinks_any_frame_to_nothing_is_refused_up_front():
    with pytest.raises(RvmkitError, match=r"downsample ratio 1e-9: below 1/16384"):
        parse_ratio("1e-9")
    assert parse_ratio(1 / 16384) == 1 / 16384


def test_every_range_in_limits_is_used_by_some_option():
    """Each LIMITS entry is checked somewhere in src (by its key, quoted), so the table holds no dead range
    and no front-end keeps a table of its own."""
    from rvmkit.contract import LIMITS

    src = Path(rvmkit.__file__).parent
    code = "\n".join(path.read_text(encoding="utf-8") for path in src.rglob("*.py")
                     if path != src / "contract.py")
    unused = [name for name in LIMITS if f'"{name}"' not in code and f"'{name}'" not in code]
    assert not unused, f"LIMITS entries no option checks: {unused}"
