"""The process's allocator policy (gmoswidgets.heaptrim): what `reduce` keeps of what it frees."""
import contextlib
import subprocess
import sys
import textwrap

import pytest

from gmoswidgets import heaptrim

pytestmark = pytest.mark.skipif(heaptrim._libc() is None or heaptrim.resident_bytes() is None,
                                reason="glibc and /proc/self/statm only")

#: Run in a fresh interpreter (the policy is the process's, for good): frees a 256 MB array
#: (above glibc's largest mmap threshold) and prints the resident MB after the free and after
#: a trim, and where the next such array went (same address: reused).
_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from gmoswidgets import heaptrim
    if sys.argv[1] == "keep":
        assert heaptrim.keep_freed_memory() is True
        assert heaptrim.keep_freed_memory() is True          # once: cached
    MB = 2**20
    block = np.ones(256 * MB, np.uint8)
    address = block.ctypes.data
    del block
    freed = heaptrim.resident_bytes() // MB
    again = np.ones(256 * MB, np.uint8)
    reused = again.ctypes.data == address
    del again
    heaptrim.release_free_heap()
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _set_madvise_hugepage
    print(freed, heaptrim.resident_bytes() // MB, reused, _set_madvise_hugepage(False))
""")


def _run(mode):
    done = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    freed, trimmed, reused, huge = done.stdout.split()
    return int(freed), int(trimmed), reused == "True", huge == "True"


def test_keep_freed_memory_keeps_a_freed_frame_for_the_next_until_a_trim():
    freed, trimmed, reused, huge = _run("keep")
    assert not huge                     # numpy asked for no huge pages
    assert reused                       # the second array took the first one's pages
    assert freed - trimmed > 200        # they stayed resident until the trim gave them back


def test_by_default_a_large_freed_array_goes_back_to_the_system_at_once():
    freed, trimmed, _, _ = _run("default")
    assert abs(freed - trimmed) < 32    # nothing was kept for a trim to give back


def test_keep_freed_memory_sets_glibc_s_parameters_one_arena_and_no_huge_pages(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(heaptrim, "_libc", lambda: FakeLibc())
    monkeypatch.setattr(heaptrim, "keep_freed_memory", heaptrim.keep_freed_memory.__wrapped__)
    monkeypatch.setattr(heaptrim, "one_malloc_arena", lambda: calls.append("arena"))
    monkeypatch.setattr(heaptrim, "no_huge_pages", lambda: calls.append("no huge pages"))
    assert heaptrim.keep_freed_memory() is True
    assert calls == ["arena", "no huge pages", (heaptrim._M_MMAP_MAX, 0),
                     (heaptrim._M_TRIM_THRESHOLD, heaptrim._INT_MAX)]


def test_reduce_applies_the_policy_from_the_shell_only(monkeypatch):
    """A notebook or a test calling reduce's main keeps glibc's defaults (see heaptrim)."""
    from gmoswidgets.cli import reduce as reduce_cli
    from gmoswidgets.errors import GmosError
    applied = []
    monkeypatch.setattr(reduce_cli, "keep_freed_memory", lambda: applied.append(True))

    def stop(argv):
        raise GmosError("stopped after the start-up")

    monkeypatch.setattr(reduce_cli, "_start", stop)
    monkeypatch.setattr(reduce_cli, "start_up", lambda from_shell: contextlib.nullcontext())
    assert reduce_cli.main(["x.fits"]) == 1
    assert applied == []
    with pytest.raises(GmosError):
        reduce_cli._reduce(["x.fits"], from_shell=True)
    assert applied == [True]
