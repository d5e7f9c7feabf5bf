"""Every export format read back by the reader its users have: csv, json, tifffile, and no
text cell a spreadsheet would run as a formula."""
import csv
import io
import json

import numpy as np
import tifffile

from simsearch import Detection
from simsearch.inference import export

HOSTILE = '=HYPERLINK("http://x","y")'
DETECTIONS = [
    Detection("a.tif@1", HOSTILE, -3.25, 12.5, 0.9, (-10.0, 0.0, 20.0, 30.0)),  # y, x
    Detection("-b.tif@2", "WBC", 40.0, 50.0, 0.75, (30.0, 40.0, 50.0, 60.0)),
]
NAMES = {"a.tif@1": "a.tif", "-b.tif@2": "-b.tif"}


def test_detections_csv_reads_back_with_numbers_kept_and_formulas_defused(tmp_path):
    export.detections_csv(tmp_path / "d.csv", DETECTIONS, NAMES)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "d.csv").read_text())))
    assert list(rows[0]) == export.DETECTION_COLUMNS
    assert rows[0]["class"] == "'" + HOSTILE and rows[1]["image"] == "'-b.tif" and rows[1]["class"] == "WBC"
    assert float(rows[0]["y"]) == -3.25 and float(rows[0]["x0"]) == -10.0  # numbers are numbers, minus signs and all
    assert all(not row[column].startswith(export.FORMULA_PREFIXES) for row in rows for column in ("image", "class"))


def test_napari_points_follow_napari_columns(tmp_path):
    export.napari_points(tmp_path / "p.csv", DETECTIONS)
    rows = list(csv.reader(io.StringIO((tmp_path / "p.csv").read_text())))
    assert rows[0] == ["index", "axis-0", "axis-1", "class", "confidence"]  # axis-0 is y, as napari reads it
    assert [float(v) for v in rows[1][1:3]] == [-3.25, 12.5] and rows[1][3] == "'" + HOSTILE


def test_summary_headers_holding_class_names_are_defused(tmp_path):
    export.summary_csv(tmp_path / "s.csv", [{"image": "-b.tif", f"{HOSTILE}_count": 2, "detections": 2}])
    header, row = list(csv.reader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert header == ["image", "'" + HOSTILE + "_count", "detections"] and row == ["'-b.tif", "2", "2"]


def test_geojson_is_a_feature_collection_of_closed_box_polygons(tmp_path):
    export.geojson(tmp_path / "g.geojson", DETECTIONS)
    collection = json.loads((tmp_path / "g.geojson").read_text())
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 2
    ring = collection["features"][1]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5 and ring[:4] == [[30.0, 40.0], [50.0, 40.0], [50.0, 60.0], [30.0, 60.0]]
    assert collection["features"][1]["properties"]["classification"]["name"] == "WBC"
    export.geojson(tmp_path / "p.geojson", DETECTIONS, boxes=False)
    point = json.loads((tmp_path / "p.geojson").read_text())["features"][0]["geometry"]
    assert point == {"type": "Point", "coordinates": [12.5, -3.25]}


def test_label_tiff_reads_back_with_its_class_names(tmp_path):
    labels = np.zeros((8, 9), np.uint8)
    labels[2:4, 3:6] = 2
    export.label_tiff(tmp_path / "l.tif", labels, ["RBC", "WBC"])
    with tifffile.TiffFile(tmp_path / "l.tif") as tiff:
        np.testing.assert_array_equal(tiff.asarray(), labels)
        names = json.loads(tiff.pages[0].description)
    assert names["labels"] == {"1": "RBC", "2": "WBC"}


def test_export_file_names_mark_frames_and_keep_the_file_s_own_hash_signs():
    safe_name = export.safe_name
    assert safe_name("plate1/A01.tif@3f2a9c0d1b2e") == "plate1__A01.tif"
    assert safe_name("stack.tif#2@3f2a9c0d1b2e") == "stack.tif_frame2"  # frame 2 of a multi-frame file
    assert safe_name("cell #3, well B.tif@3f2a9c0d1b2e") == "cell #3, well B.tif"  # was 'cell _frame3, well B.tif'
    assert safe_name("run #1/stack.tif#4@3f2a9c0d1b2e") == "run #1__stack.tif_frame4"
