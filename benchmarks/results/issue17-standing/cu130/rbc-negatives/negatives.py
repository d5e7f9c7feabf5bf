"""Where the simulated user's negatives sit in the BCCD red-cell trials of ../rbc (P 10, N 5):
per trial its similarity threshold, prototypes, positives and background, and each negative's
image, place, distance to the image edge and similarity; then BloodImage_00344.png, the image
holding three of trial r0's five negatives (red, the 96 px patch) over BCCD's boxes (RBC blue,
WBC green, platelets yellow).

    .venv/bin/python benchmarks/results/issue17-standing/cu130/rbc-negatives/negatives.py
"""
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image, ImageDraw

from simsearch import Project

BCCD = Path("../shared/data/bccd")
HERE = Path(__file__).parent
for r in range(3):
    with Project.open(f"/tmp/cu130/rbc/work/RBC_P10_N5_pos+neg+selflearn_r{r}", read_only=True,
                      dataset=BCCD / "JPEGImages") as project:
        store = project.store
        threshold = next(c.similarity_threshold for c in store.classes() if c.name == "RBC")
        print(f"r{r}: threshold {threshold:.3f}, {len(store.prototypes('RBC'))} prototypes, "
              f"{len(store.patches('RBC', 'positive'))} positives, bg {len(store.clean_background())}")
        for n in store.patches("RBC", "negative"):
            record = project.dataset.by_id(n.image_id)
            edge = min(n.y, n.x, record.height - n.y, record.width - n.x)
            print(f"   {record.path.name}@({n.y:.0f},{n.x:.0f}) edge {edge:.0f} sim {n.similarity:.3f}")
image = Image.open(BCCD / "JPEGImages" / "BloodImage_00344.jpg").convert("RGB")
draw = ImageDraw.Draw(image)
for box in ET.parse(BCCD / "Annotations" / "BloodImage_00344.xml").findall("object"):
    edges = box.find("bndbox")
    x0, y0, x1, y1 = (int(float(edges.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax"))
    draw.rectangle((x0, y0, x1, y1), outline={"RBC": "blue", "WBC": "green", "Platelets": "yellow"}[box.find("name").text], width=2)
for y, x in ((268, 482), (402, 205), (155, 468)):
    draw.rectangle((x - 48, y - 48, x + 48, y + 48), outline="red", width=3)
image.convert("P", palette=Image.ADAPTIVE, colors=128).save(HERE / "BloodImage_00344.png", optimize=True)
