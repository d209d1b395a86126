"""--malloc-keep-mib: memory a call frees stays with the process for the next call instead of going
back to the kernel (whose pages the next call would fault in again); 0 keeps glibc's behaviour."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testkit.paths import REPO_ROOT

# In a fresh interpreter: RSS (MiB) before and after freeing a 16 MiB array, with the thresholds at `mib`.
FREE_AND_MEASURE = """
import json, sys
import numpy as np
from absenteeism.malloc_tuning import keep_freed_memory

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

tuned = keep_freed_memory(int(sys.argv[1]))
block = np.ones(2 * 2**20)  # 16 MiB, every page touched
held = rss()
del block
print(json.dumps({"tuned": tuned, "given_back": held - rss()}))
"""


def freed(mib: int) -> dict:
    result = subprocess.run([sys.executable, "-c", FREE_AND_MEASURE, str(mib)], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=120, check=True)
    return json.loads(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_is_kept_for_the_next_call_only_when_asked():
    default, kept = freed(0), freed(32)
    assert not default["tuned"] and default["given_back"] > 12  # glibc unmaps a freed 16 MiB block at once
    assert kept["tuned"] and kept["given_back"] < 4  # kept: the next call reuses its pages


def test_the_server_says_whether_glibc_took_the_setting(plaintext_server):
    serving = plaintext_server.serving_entry
    assert serving["malloc_keep_mib"] == (32 if sys.platform.startswith("linux") else 0)
