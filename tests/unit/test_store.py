import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from simsearch import ConfigError, ProjectError
from simsearch.project.layout import ProjectLayout
from simsearch.project.store import SCHEMA_VERSION, PatchRecord, ProjectLockedError, Store


def test_actions_round_trip_through_reopen(tmp_path):
    with Store(tmp_path) as store:
        store.add_class("WBC", similarity_threshold=0.7)
        store.add_class("RBC")
        store.rename_class("RBC", "Red")
        proto = store.add_prototype("WBC", "a.png@1", (10, 20, 60, 80))
        assert proto.centre == (50.0, 35.0)
        store.set_negative("WBC", PatchRecord("b.png@2", 40.0, 50.0, 0.8))
        store.set_negative("WBC", PatchRecord("b.png@2", 90.0, 50.0, 0.75))
        store.set_negative("WBC", PatchRecord("b.png@2", 90.0, 50.0), flagged=False)
        store.confirm_class("WBC", 0.65, [PatchRecord("c.png@3", 1.0, 2.0, 0.9)])
        store.set_background_candidates([(PatchRecord("c.png@3", 5.0, 5.0, 0.1), "low"), (PatchRecord("c.png@3", 9.0, 9.0, 0.9), "high")])
        store.set_not_background(PatchRecord("c.png@3", 9.0, 9.0))
        store.set_confidence_threshold("Red", 0.3)
    with Store(tmp_path) as store:
        assert [(c.name, c.similarity_threshold, c.confirmed) for c in store.classes()] == [("WBC", 0.65, True), ("Red", 0.5, False)]
        assert store.class_info("Red").confidence_threshold == 0.3
        assert [p.box for p in store.prototypes("WBC")] == [(10, 20, 60, 80)]
        assert store.patches("WBC", "negative") == [PatchRecord("b.png@2", 40.0, 50.0, 0.8)]
        assert store.patches("WBC", "positive") == [PatchRecord("c.png@3", 1.0, 2.0, 0.9)]
        assert [(p.y, extreme, flag) for p, extreme, flag in store.background()] == [(5.0, "low", True), (9.0, "high", False)]
        # replacing candidates keeps the user's flag on a patch proposed again
        store.set_background_candidates([(PatchRecord("c.png@3", 9.0, 9.0, 0.9), "high")])
        assert [(p.y, flag) for p, _, flag in store.background()] == [(9.0, False)]
        store.delete_class("WBC")
        assert store.prototypes() == [] and [c.name for c in store.classes()] == ["Red"]


def test_bad_input_leaves_state_unchanged(tmp_path):
    with Store(tmp_path) as store:
        store.add_class("A")
        for call, match in [
            (lambda: store.add_class("A"), "already exists"),
            (lambda: store.add_class("  "), "empty"),
            (lambda: store.set_similarity_threshold("A", 1.5), "outside"),
            (lambda: store.set_similarity_threshold("Nope", 0.5), "unknown class 'Nope'"),
            (lambda: store.set_confidence_threshold("A", -0.1), "outside"),
            (lambda: store.confirm_class("A", 2.0, []), "outside"),
            (lambda: store.delete_prototype(99), "unknown prototype"),
            (lambda: store.set_not_background(PatchRecord("x", 1, 1)), "not a background candidate"),
        ]:
            with pytest.raises(ConfigError, match=match):
                call()
        assert [(c.name, c.similarity_threshold) for c in store.classes()] == [("A", 0.5)]


def test_second_writer_is_refused_reader_allowed(tmp_path):
    code = (
        "import sys, time\n"
        "from simsearch.project.store import Store\n"
        f"s = Store({str(tmp_path)!r}); s.add_class('A'); print('ready', flush=True); time.sleep(30)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ProjectLockedError, match=f"process {holder.pid}"):
            Store(tmp_path)
        with Store(tmp_path, read_only=True) as reader:
            assert [c.name for c in reader.classes()] == ["A"]
            with pytest.raises(ProjectError, match="read-only"):
                reader.add_class("B")
    finally:
        holder.kill()
        holder.wait()
    with Store(tmp_path) as store:  # the lock dies with its process
        assert [c.name for c in store.classes()] == ["A"]


def test_sigkill_in_a_burst_loses_nothing_confirmed(tmp_path):
    code = (
        "from simsearch.project.store import Store, PatchRecord\n"
        f"s = Store({str(tmp_path)!r}); s.add_class('A')\n"
        "for i in range(100000):\n"
        "    s.set_negative('A', PatchRecord('img', float(i), 0.0, 0.5))\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    confirmed = -1
    deadline = time.time() + 60
    while confirmed < 200 and time.time() < deadline:
        confirmed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(tmp_path) as store:
        stored = {p.y for p in store.patches("A", "negative")}
    assert set(map(float, range(confirmed + 1))) <= stored  # every printed (returned) action is there
    assert sqlite3.connect(ProjectLayout(tmp_path).store_file).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_newer_schema_is_refused(tmp_path):
    Store(tmp_path).close()
    conn = sqlite3.connect(ProjectLayout(tmp_path).store_file)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match="newer|knows up to"):
        Store(tmp_path)


def test_a_change_after_confirming_a_class_makes_it_unconfirmed(tmp_path):
    with Store(tmp_path) as store:
        store.add_class("A")
        store.add_class("B")
        for change in (lambda: store.set_similarity_threshold("A", 0.7),
                       lambda: store.set_negative("A", PatchRecord("i", 1.0, 2.0)),
                       lambda: store.set_negative("A", PatchRecord("i", 1.0, 2.0), flagged=False),
                       lambda: store.add_prototype("A", "i", (0, 0, 8, 8)),
                       lambda: store.delete_prototype(store.prototypes("A")[-1].id)):
            store.confirm_class("A", store.class_info("A").similarity_threshold, [PatchRecord("i", 5.0, 5.0)])
            store.confirm_class("B", 0.5, [])
            assert store.class_info("A").confirmed
            change()
            assert not store.class_info("A").confirmed and store.class_info("B").confirmed  # only the class changed
            assert store.patches("A", "positive") == [PatchRecord("i", 5.0, 5.0, None)]  # its last positives stay
        store.confirm_class("A", 0.7, [])
        store.set_similarity_threshold("A", 0.7)  # the same value: no change
        assert store.class_info("A").confirmed


def test_clean_background_leaves_out_flagged_and_unconfirmed_candidates(tmp_path):
    with Store(tmp_path) as store:
        store.set_background_candidates([(PatchRecord("i", 1.0, 1.0), "low"), (PatchRecord("i", 9.0, 9.0), "high")])
        assert store.clean_background() == []
        store.set_not_background(PatchRecord("i", 9.0, 9.0))
        store.confirm_background()
        assert store.clean_background() == [PatchRecord("i", 1.0, 1.0, None)]
        store.confirm_background([PatchRecord("i", 1.0, 1.0)], confirmed=False)  # taken back: one patch
        assert store.clean_background() == [] and len(store.background(confirmed_only=True)) == 1


def test_nested_transactions_commit_or_roll_back_as_one(tmp_path):
    with Store(tmp_path) as store:
        store.add_class("A")
        with pytest.raises(ConfigError, match="already exists"):
            with store.transaction():
                store.add_prototype("A", "i", (0, 0, 8, 8))
                store.add_class("B")
                store.add_class("B")  # fails: everything of the outer transaction goes
        assert store.prototypes() == [] and [c.name for c in store.classes()] == ["A"]
        with store.transaction():
            store.add_prototype("A", "i", (0, 0, 8, 8))
            store.add_class("B")
        assert len(store.prototypes()) == 1 and [c.name for c in store.classes()] == ["A", "B"]
    with Store(tmp_path) as store:  # and it was durable
        assert len(store.prototypes()) == 1


@pytest.mark.slow
def test_an_import_killed_midway_stores_nothing(tmp_path):
    """`simsearch import` killed with SIGKILL while it stores: nothing of it is in the store, and
    importing again gives each prototype once."""
    from conftest import write_planted

    write_planted(tmp_path / "images", 3)
    project = tmp_path / "proj"
    rows = ["kind,class,image,x0,y0,x1,y1"] + [f"prototype,disc,img{i % 3}.tif,{20 + i},{20 + i},{52 + i},{52 + i}" for i in range(40)]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    assert subprocess.run([sys.executable, "-m", "simsearch", "-q", "create", str(tmp_path / "images"), "--project", str(project),
                           "--displayed", "2", "--backbone", "efficientnet-lite0"]).returncode == 0
    code = ("import os, signal, sys\n"
            "from simsearch import Project, Curation\n"
            "from simsearch.project import store\n"
            "from simsearch.curation.importer import import_annotations\n"
            "original = store.Store.add_prototype\n"
            "def add(self, *args, **kwargs):\n"
            "    added = original(self, *args, **kwargs)\n"
            "    if len(self.prototypes()) == 20: os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return added\n"
            "store.Store.add_prototype = add\n"
            f"with Project.open({str(project)!r}) as p:\n"
            f"    import_annotations(p, Curation(p), {str(tmp_path / 'p.csv')!r})\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    with Store(project, read_only=True) as store:
        assert store.prototypes() == [] and store.classes() == []
    assert subprocess.run([sys.executable, "-m", "simsearch", "-q", "import", str(tmp_path / "p.csv"),
                           "--project", str(project)]).returncode == 0
    with Store(project, read_only=True) as store:
        assert len(store.prototypes()) == 40


def test_a_store_from_before_scale_pyramids_upgrades_and_keeps_its_patches(tmp_path):
    """A version 2 store (written before levels existed) opens at the current version: its
    patches and background candidates are at level 1 (the patch size), and levels written now
    come back."""
    from simsearch.project.store import MIGRATIONS

    conn = sqlite3.connect(ProjectLayout(tmp_path).store_file)
    conn.executescript(MIGRATIONS[1] + MIGRATIONS[2] + "PRAGMA user_version=2;")
    conn.execute("INSERT INTO classes (name, created_at) VALUES ('A', 'then')")
    conn.execute("INSERT INTO class_patches (class_id, kind, image_id, y, x, similarity, created_at) "
                 "VALUES (1, 'positive', 'img', 5.0, 6.0, 0.9, 'then')")
    conn.execute("INSERT INTO noisy_patches (class_id, image_id, y, x, similarity) VALUES (1, 'img', 7.0, 8.0, 0.8)")
    conn.execute("INSERT INTO background (image_id, y, x, similarity, extreme, is_background, confirmed, created_at) "
                 "VALUES ('img', 11.0, 12.0, 0.1, 'low', 1, 1, 'then')")
    conn.commit()
    conn.close()
    with Store(tmp_path) as store:
        assert store.patches("A", "positive") == [PatchRecord("img", 5.0, 6.0, 0.9, 1.0)]
        assert store.noisy("A") == [PatchRecord("img", 7.0, 8.0, 0.8, 1.0)]
        assert store.clean_background() == [PatchRecord("img", 11.0, 12.0, 0.1, 1.0)]
        store.set_background_candidates([(PatchRecord("img", 20.0, 20.0, 0.9, level=2.0), "high")])
        store.confirm_class("A", 0.5, [PatchRecord("img", 1.0, 2.0, 0.7, level=2.0)])
        store.set_negative("A", PatchRecord("img", 3.0, 4.0, 0.6, level=0.5))
        store.add_noisy("img", {"A": [PatchRecord("img", 9.0, 9.0, 0.7, level=4.0)], None: []})
    with Store(tmp_path) as store:
        assert [p.level for p in store.patches("A", "positive")] == [2.0]
        assert [p.level for p in store.patches("A", "negative")] == [0.5]
        assert [p.level for p in store.noisy("A")] == [4.0]
        assert [(p.y, p.level) for p, _, _ in store.background()] == [(11.0, 1.0), (20.0, 2.0)]
    assert sqlite3.connect(ProjectLayout(tmp_path).store_file).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


def test_no_class_takes_the_backgrounds_name(tmp_path):
    """The classifier's last class is "background": a ROI class of that name (in any case)
    would share its label and its noisy patches, so adding or renaming to it is refused."""
    with Store(tmp_path) as store:
        for name in ("background", " Background ", "BACKGROUND"):
            with pytest.raises(ConfigError, match=f"class name {name.strip()!r}: the background has this name"):
                store.add_class(name)
        store.add_class("WBC")
        with pytest.raises(ConfigError, match="the background has this name"):
            store.rename_class("WBC", "Background")
        store.add_class("background cells")  # a name that only contains it is a name of its own
        assert [c.name for c in store.classes()] == ["WBC", "background cells"]
