"""Memory the GX worker freed goes back to the system before its next request
(``sdpipeline.memory``)."""

import subprocess
import sys

import pytest

from sdpipeline.memory import _malloc_trim

FREE_AND_GIVE_BACK = """
from sdpipeline.memory import give_back_freed_memory

def rss_mb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

# 256 MB in blocks small enough for the C heap (not mmap), then one block allocated after
# them, which keeps the heap's top in use: free() alone cannot shrink the heap past it
blocks = [bytearray(32 * 1024) for _ in range(8192)]
top = bytearray(32 * 1024)
del blocks
freed = rss_mb()
give_back_freed_memory()
print(freed, rss_mb())
"""


@pytest.mark.skipif(_malloc_trim() is None, reason="the C library has no malloc_trim")
def test_freed_memory_is_given_back_to_the_system():
    done = subprocess.run(
        [sys.executable, "-c", FREE_AND_GIVE_BACK], capture_output=True, text=True, check=True
    )
    freed, given_back = map(int, done.stdout.split())
    assert freed > 256  # freed, and still the process's
    assert given_back < freed - 200
