"""What the CPU is (`rvmkit.runtime.cpu`): its flags from /proc/cpuinfo (None where unknown) and the
signature that names the files tuned to it."""

from __future__ import annotations

from rvmkit.runtime import cpu
from rvmkit.runtime.cpu import cpu_flags
from rvmkit.runtime.precision import missing_instructions


def test_cpu_flags_come_from_proc_cpuinfo(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_vnni\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 avx512_vnni\n")
    monkeypatch.setattr(cpu, "CPUINFO", cpuinfo)
    monkeypatch.setattr(cpu.sys, "platform", "linux")
    assert cpu_flags() == {"fpu", "avx2", "avx512_vnni"}
    assert missing_instructions("int8", cpu_flags()) == ()
    cpuinfo.write_text("processor\t: 0\n")
    assert cpu_flags() is None
    monkeypatch.setattr(cpu, "CPUINFO", tmp_path / "absent")
    assert cpu_flags() is None
    monkeypatch.setattr(cpu.sys, "platform", "darwin")
    assert cpu_flags() is None


def test_the_signature_names_the_model_its_flags_and_the_core_count(tmp_path, monkeypatch):
    """Files tuned to a CPU are kept per signature: the same CPU gives the same 12 hex digits, another
    flag set gives others."""
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(cpu, "CPUINFO", cpuinfo)
    monkeypatch.setattr(cpu.sys, "platform", "linux")
    signatures = []
    for flags in ("fpu avx2", "fpu avx2", "fpu avx2 avx512_vnni"):
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n")
        cpu.cpu_signature.cache_clear()
        signatures.append(cpu.cpu_signature())
    cpu.cpu_signature.cache_clear()  # the real CPU's again for the tests that follow
    assert all(len(s) == 12 and int(s, 16) >= 0 for s in signatures)
    assert signatures[0] == signatures[1] != signatures[2]
