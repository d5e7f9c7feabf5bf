"""The first 24 false detections of the infected cells by a trial project of /tmp/smear (run.sh) on
the test images, with the nearest annotated object, and a contact sheet of them:

    .venv/bin/python benchmarks/results/issue17-smear/top_false.py EVAL/work/TRIAL sheet.png
"""
import sys, numpy as np, csv
from pathlib import Path
from PIL import Image, ImageDraw
from simsearch import Project
from simsearch.inference.predict import Predictor, detections_from_levels
from simsearch.io.images import read_image
proj, out = sys.argv[1], sys.argv[2]
D = Path('/tmp/smear')
test = D.joinpath('test.txt').read_text().split()
truth = {}
for r in csv.DictReader(open(D / 'truth.csv')):
    centre = (float(r['y0']) + float(r['y1'])) / 2, (float(r['x0']) + float(r['x1'])) / 2
    truth.setdefault(r['image'], []).append((r['class'], *centre))
rows = []
with Project.open(proj, read_only=True) as project:
    pred = Predictor(project, device='cpu')
    classes = pred.class_names[:-1]
    radius = 0.3 * project.geometry.patch_size[1]
    for name in test:
        image = read_image(D / 'images' / name)
        for d in detections_from_levels(pred.level_maps(image), classes, dict.fromkeys(classes, 0.0), name):
            if d.class_name == 'infected':
                rows.append((d.confidence, name, d.y, d.x))
rows.sort(reverse=True)
matched = set(); fps = []; tp = 0
for conf, name, y, x in rows:
    best = None
    for k, (c, ty, tx) in enumerate(truth.get(name, [])):
        if c == 'infected' and (name, k) not in matched and np.hypot(ty - y, tx - x) <= radius:
            best = k; break
    if best is not None:
        matched.add((name, best)); tp += 1
    else:
        near = min(((np.hypot(ty - y, tx - x), c) for c, ty, tx in truth.get(name, [])), default=(99, '-'))
        fps.append((conf, name, y, x, near, tp))
    if len(fps) >= 24: break
print(proj.split('/')[-1], 'true before the 24th false:', tp)
from collections import Counter
print(Counter(n[1] for *_, n, _ in fps))
sheet = Image.new('RGB', (8 * 100, 3 * 100), 'white')
for i, (conf, name, y, x, near, t) in enumerate(fps):
    im = Image.open(D / 'images' / name).convert('RGB')
    crop = im.crop((int(x - 24), int(y - 24), int(x + 24), int(y + 24))).resize((96, 96), Image.NEAREST)
    ImageDraw.Draw(crop).text((2, 2), f"{conf:.2f}", fill='black')
    sheet.paste(crop, ((i % 8) * 100, (i // 8) * 100))
    print(f"  {conf:.3f} {name} y{y:.0f} x{x:.0f} nearest {near[1]} {near[0]:.1f} px; true so far {t}")
sheet.save(out)
