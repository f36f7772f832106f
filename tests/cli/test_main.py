import pytest

from rvmkit.cli import main


def test_weights_fetch_prints_cached_paths_pth_last(capsys, checkpoint):
    assert main(["weights", "fetch"]) == 0
    lines = capsys.readouterr().out.split()
    assert lines[-1] == str(checkpoint)
    assert lines[0].endswith("rvm_mobilenetv3_fp32.onnx")


def test_cli_and_onnxruntime_matte_path_never_import_torch(tmp_path):
    """The runtime path stays light: parsing every command and matting with ONNX Runtime load no torch."""
    import subprocess
    import sys

    from conftest import CLIPS

    script = (
        "import sys\n"
        "from rvmkit.cli import build_parser, main\n"
        "build_parser()\n"
        f"code = main(['matte', {str(CLIPS['milk'])!r}, '--input-resize', '160', '120', '--quiet',\n"
        f"             '--output-alpha', {str(tmp_path / 'alpha.mp4')!r}])\n"
        "assert code == 0, code\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert (tmp_path / "alpha.mp4").exists()


def test_segment_options_refuse_nonsense_counts(capsys):
    import pytest

    for argv in (["--segments", "0"], ["--segments", "x"], ["--warmup", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["matte", "in.mp4", "--output-alpha", "a.mp4", *argv])
        assert exit_info.value.code == 2
        assert "argument --" in capsys.readouterr().err


def test_version_is_the_installed_package_version(capsys):
    from importlib.metadata import version

    import rvmkit

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"rvmkit {version('rvmkit')}" == f"rvmkit {rvmkit.__version__}"
