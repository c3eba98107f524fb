"""numerics.preload: the science modules load the compiled kernels in a background thread."""
import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_importing_the_science_modules_loads_the_kernels_in_the_background():
    done = run("""
        import sys, threading
        import gmoswidgets.primitives.photometry
        from gmoswidgets.numerics import preload
        assert any(t.name == "gmoswidgets-kernel-preload" for t in threading.enumerate()) \\
            or all(name in sys.modules for name in preload.MODULES)
        preload.wait()
        assert all(name in sys.modules for name in preload.MODULES), preload.MODULES
        print("ok")
        """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok"]


def test_a_fork_waits_for_the_loading_and_the_child_can_use_the_kernels():
    """A child forked while the thread loads would inherit its locks: the fork waits."""
    done = run("""
        import os
        import numpy as np
        import gmoswidgets.primitives.photometry   # starts the loading
        pid = os.fork()
        if pid == 0:
            from gmoswidgets.primitives import photometry_kernels as k
            image = np.ones((4, 4), np.float32)
            bad = k.bad_pixels(image, image, True, np.zeros((4, 4), np.uint16), True, 1)
            os._exit(0 if not bad.any() else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0"]
