"""Divide every image of a grey BCCD copy by the dataset's per-pixel median image (scaled to mean 1):
retrospective flat-field correction, which removes dust fixed on the optics. Experiment only."""
import sys, glob, shutil
from pathlib import Path
import numpy as np, tifffile
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
(dst / 'images').mkdir(parents=True, exist_ok=True)
for name in ('truth.csv', 'train.txt', 'test.txt'):
    shutil.copy(src / name, dst / name)
files = sorted((src / 'images').glob('*.tif'))
stack = np.stack([tifffile.imread(f).astype(np.float32) for f in files])
flat = np.median(stack, axis=0)
flat /= flat.mean()
for f, image in zip(files, stack):
    out = image / flat
    info = np.iinfo(tifffile.imread(f).dtype)
    tifffile.imwrite(dst / 'images' / f.name, np.clip(np.rint(out), info.min, info.max).astype(info.dtype))
print(len(files), 'images; flat field range', flat.min(), flat.max())
