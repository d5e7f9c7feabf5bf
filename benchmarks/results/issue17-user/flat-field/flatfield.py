"""Divide every image of a grey BCCD copy by the dataset's per-pixel median image (scaled to mean 1):
retrospective flat-field correction, which removes dust fixed on the optics. Experiment only."""
import sys, shutil
from pathlib import Path
import numpy as np, tifffile
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
(dst / 'images').mkdir(parents=True, exist_ok=True)
for name in ('truth.csv', 'train.txt', 'test.txt'):
    shutil.copy(src / name, dst / name)
files = sorted((src / 'images').glob('*.tif'))
images = [tifffile.imread(f) for f in files]
stack = np.stack([image.astype(np.float32) for image in images])
flat = np.median(stack, axis=0)
flat /= flat.mean()
for f, image, stored in zip(files, stack, images):
    out = image / flat
    info = np.iinfo(stored.dtype)
    tifffile.imwrite(dst / 'images' / f.name, np.clip(np.rint(out), info.min, info.max).astype(info.dtype))
print(len(files), 'images; flat field range', flat.min(), flat.max())
