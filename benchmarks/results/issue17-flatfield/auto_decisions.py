"""What --flat-field auto decides on each data set here (`choose_flat_field`), written to the JSON file named.

The data sets as ../issue17-standing/data.sh and README.md there make them; run from the repository root.
"""
import json, sys
from simsearch import Dataset, choose_flat_field
rows = {}
for name, path in [("BCCD, colour JPEG", "../shared/data/bccd/JPEGImages"), ("grey 16-bit BCCD", "/tmp/bccd16/images"),
                   ("inverted 12-bit BCCD", "/tmp/bccd12inv/images"), ("half-size grey BCCD", "/tmp/bccd-half/images"),
                   ("planted nuclei", "/tmp/nuc/images"), ("planted look-alikes", "/tmp/look/images"),
                   ("planted smear", "/tmp/smear/images"), ("planted particles", "/tmp/part/images"),
                   ("DSB tiles", "/tmp/dsb/images"), ("the bundled sample", "examples/data")]:
    flat, reason = choose_flat_field(Dataset.open(path))
    rows[name] = {"mode": flat.mode if flat else "none", "agreement": None if flat is None else round(flat.agreement, 3), "reason": reason}
    print(f"{name}: {reason}")
json.dump(rows, open(sys.argv[1], "w"), indent=1)
