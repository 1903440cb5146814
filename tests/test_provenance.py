"""Provenance: what a run records about the machine, so that two runs' figures can be compared honestly."""

from lungnodule.provenance import cpu_description, describe, run_info


def test_a_run_records_the_processor_and_its_vector_extension():
    info = run_info(seed=3)
    assert info["seed"] == 3 and info["cpu"] == cpu_description() and info["cpu"]
    # On x86 Linux the widest vector extension is named: oneDNN picks its kernels by it.
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    if "avx512f" in flags:
        assert info["cpu"].endswith("AVX-512")
    elif "avx2" in flags:
        assert info["cpu"].endswith("AVX2")
    assert info["cpu"] in describe(info)
    # A record written before the field existed still reads.
    assert "cpu not recorded" in describe({k: v for k, v in info.items() if k != "cpu"})
