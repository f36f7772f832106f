"""The CLI's entry point (`rvmkit.cli.main`): --version, shared option checks, signals restored after a
run, SIGTERM and SIGHUP clean up like Ctrl+C, a killed run's temporaries removed by the next, and no torch
on the ONNX Runtime path."""

from __future__ import annotations

import pytest

from rvmkit.cli import main


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


def _start_matte(out, *extra: str):
    """A real `rvmkit matte` process on a 51-frame clip, returned once its temporary outputs exist
    (it is then mid-run: sinks open, frames flowing). It starts with the signals' default actions, as
    from a terminal, even where the tests run under nohup (which would pass its ignored SIGHUP on)."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import CLIPS

    def default_signals() -> None:
        for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)

    run = subprocess.Popen([sys.executable, "-m", "rvmkit", "matte", str(CLIPS["milk"]), "--quiet",
                            "--output-composition", str(out / "com.mp4"), "--output-alpha", str(out / "pha"),
                            "--downsample-ratio", "0.25", *extra], stderr=subprocess.PIPE, text=True,
                           preexec_fn=default_signals)
    deadline = time.monotonic() + 120
    while len([p for p in out.iterdir() if "rvmkit-tmp" in p.name]) < 2:
        assert run.poll() is None, run.stderr.read()
        assert time.monotonic() < deadline, "the run never opened its outputs"
        time.sleep(0.02)
    time.sleep(0.3)  # a few frames in
    return run


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path, name):
    """The issue's repro: both signals left `.com.mp4.PID.rvmkit-tmp.mp4` and `.pha.PID.rvmkit-tmp/`."""
    import signal

    out = tmp_path / "out"
    out.mkdir()
    run = _start_matte(out)
    signum = getattr(signal, name)
    run.send_signal(signum)
    code, err = run.wait(timeout=60), run.stderr.read()
    assert code == 128 + signum, err
    assert err == f"rvmkit: terminated by {name}\n"
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_a_killed_runs_temporaries_are_removed_by_the_next_run(tmp_path, capsys):
    """SIGKILL cannot be handled: the next run to those outputs removes what the dead one left."""
    import signal

    out = tmp_path / "out"
    out.mkdir()
    run = _start_matte(out)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    left = sorted(p.name for p in out.iterdir())
    assert left == [f".com.mp4.{run.pid}.rvmkit-tmp.mp4", f".pha.{run.pid}.rvmkit-tmp"]
    from conftest import CLIPS

    assert main(["matte", str(CLIPS["milk"]), "--quiet", "--output-composition", str(out / "com.mp4"),
                 "--output-alpha", str(out / "pha"), "--input-resize", "160", "120"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["com.mp4", "pha"]


def test_signals_are_restored_after_main_and_an_ignored_one_stays_ignored():
    """nohup's ignored SIGHUP is left alone; handlers are the caller's again once main returns."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # what a fresh process has (Ray's init sets its own)
    try:
        with pytest.raises(SystemExit):
            main(["--version"])
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
