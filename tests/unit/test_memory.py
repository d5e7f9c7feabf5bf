"""keep_freed_memory: training steps reuse freed activations instead of faulting new pages in."""
import os
import subprocess
import sys

import pytest

CODE = """
import resource, sys, torch
from simsearch.util.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.manual_seed(0)
net = torch.nn.Sequential(*[torch.nn.Conv2d(32, 32, 3, padding=1) for _ in range(2)])
x = torch.randn(16, 32, 128, 128)  # activations of 32 MB: glibc would mmap each one
def step():
    net(x).square().mean().backward()
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    step()
print(int(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_training_steps_reuse_freed_memory():
    applied, kept = _faults("keep")
    _, system = _faults("system")
    assert applied == 1
    assert system > 100_000  # glibc's default: each step faults its activations in again
    assert kept < system // 5
    assert _faults("keep", SIMSEARCH_SYSTEM_MALLOC="1")[0] == 0  # the opt-out


RELEASE = """
import numpy as np
from simsearch.util.memory import keep_freed_memory, release_freed_memory
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
keep_freed_memory()
image = np.ones(300 << 20, np.uint8)  # an image's worth of pixels, touched
small = np.ones(1000)  # allocated after it: the freed image is not at the heap's top
del image
kept = rss()
release_freed_memory()
print(kept - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_release_gives_a_freed_image_back():
    released = int(subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, check=True).stdout)
    assert released > 250 << 20
