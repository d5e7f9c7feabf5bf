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


def _resident_bytes(path) -> int:
    """Bytes of `path` mapped into this process and resident (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and ":" not in fields[0]:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_a_slide_cache_read_band_by_band_does_not_stay_resident(tmp_path, monkeypatch):
    """Similarity maps and the on-disk index search read a cached vectors file band by band;
    the bands read do not stay in the process (the file's 45 MB would, without dropping them)."""
    import numpy as np

    import simsearch.search.index as index_module
    from simsearch import PatchGeometry, PatchIndex, similarity_map

    path = tmp_path / "slide.npy"
    np.save(path, np.random.default_rng(0).normal(size=(400, 500, 112)).astype(np.float16))
    mapped = np.load(path, mmap_mode="r")
    heat = similarity_map(mapped, np.ones(112, np.float32))
    assert heat.shape == (400, 500) and _resident_bytes(path) < 16 << 20
    float(mapped[:100].astype(np.float32).sum())  # read without dropping: it stays resident
    assert _resident_bytes(path) > 8 << 20
    del mapped

    opened = []  # the search's own map, kept open here to look at it afterwards
    vectors = index_module._OnDisk.vectors
    monkeypatch.setattr(index_module._OnDisk, "vectors", lambda self: opened.append(vectors(self)) or opened[-1])
    index = PatchIndex(112, use_gpu=False)
    index.add_on_disk("slide.tif@1", path, PatchGeometry.for_patch(64))
    assert len(index.search(np.ones(112, np.float32), k=5).scores[0]) == 5
    assert opened and _resident_bytes(path) < 16 << 20
