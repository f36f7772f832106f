"""The options `rvmkit matte` and `rvmkit batch` share: one definition, choices from the registries,
`--model-variant` (export's name) accepted wherever a variant is taken, `--variant` kept as its alias."""

from __future__ import annotations

import pytest

from rvmkit.cli import build_parser
from rvmkit.export import PRECISIONS
from rvmkit.model import VARIANTS
from rvmkit.runtime import BACKENDS, DEVICES

COMMANDS = {"matte": ["matte", "in.mp4"], "batch": ["batch", "in.mp4", "--output-dir", "out"]}


def _choices(argv: list[str], flag: str) -> tuple[str, ...]:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[argv[0]]
    action = next(a for a in sub._actions if flag in a.option_strings)
    return tuple(action.choices)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["--model-variant", "--variant"])
def test_model_variant_and_its_alias_set_the_variant(command, flag):
    args = build_parser().parse_args([*COMMANDS[command], flag, "resnet50"])
    assert args.variant == "resnet50"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_choices_come_from_the_registries(command):
    argv = COMMANDS[command]
    assert _choices(argv, "--model-variant") == VARIANTS
    assert _choices(argv, "--backend") == BACKENDS
    assert _choices(argv, "--device") == DEVICES


def test_export_choices_come_from_the_registries():
    assert _choices(["export"], "--model-variant") == VARIANTS
    assert _choices(["export"], "--precision") == PRECISIONS
    assert _choices(["export"], "--device") == DEVICES


def test_an_unknown_variant_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*COMMANDS["matte"], "--model-variant", "mobilenetv2"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'mobilenetv2'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [COMMANDS["matte"], COMMANDS["batch"], ["live", "in.mp4"],
                                  ["serve", "--data-dir", "d"]])
def test_every_front_end_takes_precision_default_fp32(argv):
    from rvmkit.runtime.precision import PRECISIONS as RUNTIME_PRECISIONS

    assert _choices(argv, "--precision") == RUNTIME_PRECISIONS
    assert build_parser().parse_args(argv).precision == "fp32"


def test_matte_options_carry_the_precision():
    from rvmkit.cli.options import matte_options

    args = build_parser().parse_args([*COMMANDS["matte"], "--precision", "int8"])
    assert matte_options(args)["precision"] == "int8"


def test_a_refused_precision_is_one_line_and_exit_2(tmp_path, capsys):
    from conftest import real_clip
    from rvmkit.cli import main

    clip = real_clip(tmp_path / "in.mp4", "book", 2, size=(64, 48))
    out = tmp_path / "alpha.mp4"
    assert main(["matte", str(clip), "--output-alpha", str(out), "--precision", "int8", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--precision int8: not offered" in err
    assert not out.exists()
