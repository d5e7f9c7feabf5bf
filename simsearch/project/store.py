"""The project store: every user action in one SQLite file, committed as it is made.

WAL journal, foreign keys, FULL synchronous commits and a schema version in
``PRAGMA user_version`` with forward migrations. One process at a time may write:
an exclusive advisory lock on ``store.lock`` is held while the store is open for
writing; a second writer gets ProjectLockedError, and may open read-only instead.
Killing the process at any moment loses nothing that a method had returned from.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from simsearch.features.geometry import object_side
from simsearch.io.images import NamedImage
from simsearch.project.layout import ProjectLayout
from simsearch.util.errors import ConfigError, ProjectError

SCHEMA_VERSION = 4


class ProjectLockedError(ProjectError):
    """Another process has the project open for writing.

    Examples
    --------
    A second writer of the same folder (a second `Project.open`, e.g. in another terminal)
    is refused; `Project.open(folder, read_only=True)` may look meanwhile.

    >>> import tempfile
    >>> from simsearch import ProjectLockedError
    >>> from simsearch.project.store import Store                  # what an open Project holds (project.store)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> writer = Store(tmp.name)
    >>> try:
    ...     Store(tmp.name)
    ... except ProjectLockedError as error:
    ...     print(error.hint)
    close the other session, or open this one read-only
    >>> writer.close(); tmp.cleanup()
    """


# the tables whose rows belong to one class (class_id), deleted with it
_CLASS_TABLES = ("prototypes", "class_patches", "noisy_patches", "review_items")

_SCHEMA_V1 = """
CREATE TABLE classes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    similarity_threshold REAL NOT NULL DEFAULT 0.5,
    confidence_threshold REAL NOT NULL DEFAULT 0.5,
    confirmed_at TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE prototypes (
    id INTEGER PRIMARY KEY,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    image_id TEXT NOT NULL,
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE class_patches (
    id INTEGER PRIMARY KEY,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('positive', 'negative')),
    image_id TEXT NOT NULL, y REAL NOT NULL, x REAL NOT NULL, similarity REAL,
    created_at TEXT NOT NULL,
    UNIQUE (class_id, image_id, y, x)
);
CREATE TABLE background (
    id INTEGER PRIMARY KEY,
    image_id TEXT NOT NULL, y REAL NOT NULL, x REAL NOT NULL, similarity REAL,
    extreme TEXT NOT NULL CHECK (extreme IN ('high', 'low')),
    is_background INTEGER NOT NULL CHECK (is_background IN (0, 1)),
    confirmed INTEGER NOT NULL DEFAULT 0 CHECK (confirmed IN (0, 1)),
    created_at TEXT NOT NULL,
    UNIQUE (image_id, y, x)
);
CREATE TABLE noisy_patches (
    id INTEGER PRIMARY KEY,
    class_id INTEGER REFERENCES classes(id) ON DELETE CASCADE,  -- NULL: background
    image_id TEXT NOT NULL, y REAL NOT NULL, x REAL NOT NULL, similarity REAL NOT NULL
);
CREATE TABLE noisy_done (image_id TEXT PRIMARY KEY, done_at TEXT NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX class_patches_by_class ON class_patches (class_id, kind);
CREATE INDEX noisy_by_class ON noisy_patches (class_id);
"""

# 2: the review round. A class's current review batch holds numbered items (the model's
# detections on undisplayed images, as listed to the user); answers make them clean positives
# ('accepted') or negatives ('rejected') of the class. Answered items outlive their batch
# (number NULL), unanswered ones are replaced by the next batch.
_SCHEMA_V2 = """
CREATE TABLE review_items (
    id INTEGER PRIMARY KEY,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    number INTEGER,
    image_id TEXT NOT NULL, y REAL NOT NULL, x REAL NOT NULL,
    confidence REAL NOT NULL,
    answer TEXT CHECK (answer IN ('accepted', 'rejected')),
    created_at TEXT NOT NULL,
    answered_at TEXT,
    UNIQUE (class_id, image_id, y, x)
);
CREATE INDEX review_by_class ON review_items (class_id, number);
"""

# 3: the scale pyramid. A patch's level: the size of its object relative to the patch (1: the
# patch size; what a project without a pyramid stores), so that training crops it at its scale.
_SCHEMA_V3 = """
ALTER TABLE class_patches ADD COLUMN level REAL NOT NULL DEFAULT 1.0;
ALTER TABLE noisy_patches ADD COLUMN level REAL NOT NULL DEFAULT 1.0;
ALTER TABLE review_items ADD COLUMN level REAL NOT NULL DEFAULT 1.0;
"""

# 4: background candidates at every level of the pyramid (a level-2 candidate is background
# twice the patch's size, as a level-2 object is; training crops it at its scale)
_SCHEMA_V4 = """
ALTER TABLE background ADD COLUMN level REAL NOT NULL DEFAULT 1.0;
"""

# version reached -> SQL that brings a store from the previous version to it
MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4}

REVIEW_ANSWERS = ("accepted", "rejected")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ClassInfo:
    """confirmed: the clean positives were taken from the class's suggestions as they are now;
    a later prototype, flag or similarity threshold makes it False until confirmed again (the
    positives of the last confirmation stay stored).

    Examples
    --------
    `Curation.add_class` and `Curation.classes` return these; here from the store itself:

    >>> import tempfile
    >>> from simsearch.project.store import Store                  # what an open Project holds (project.store)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = Store(tmp.name)
    >>> store.add_class("RBC", similarity_threshold=0.6)
    ClassInfo(id=1, name='RBC', similarity_threshold=0.6, confidence_threshold=0.5, confirmed=False)
    >>> store.confirm_class("RBC", 0.6, positives=[])
    >>> store.class_info("RBC").confirmed
    True
    >>> store.close(); tmp.cleanup()
    """

    id: int
    name: str
    similarity_threshold: float
    confidence_threshold: float
    confirmed: bool


@dataclass(frozen=True)
class Prototype(NamedImage):
    """One example box of a class (`Curation.add_prototype`): its id in the store, the class,
    the image and the box (x0, y0, x1, y1) px.

    Examples
    --------
    >>> from simsearch import Prototype
    >>> prototype = Prototype(1, "WBC", "slide1.png@0123456789ab", (84.0, 40.0, 116.0, 72.0))
    >>> prototype.centre, prototype.side                           # (y, x); its size (`object_side`)
    ((56.0, 100.0), 32.0)
    >>> curation.add_prototype("WBC", "slide1.png", (84, 40, 116, 72))   # doctest: +SKIP
    Prototype(id=1, class_name='WBC', image_id='slide1.png@...', box=(84.0, 40.0, 116.0, 72.0))
    """

    id: int
    class_name: str
    image_id: str
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) px

    @property
    def centre(self) -> tuple[float, float]:
        """(y, x)"""
        x0, y0, x1, y1 = self.box
        return (y0 + y1) / 2, (x0 + x1) / 2

    @property
    def side(self) -> float:
        """The object's size as the scale pyramid measures it (`object_side` of the box)."""
        x0, y0, x1, y1 = self.box
        return object_side(y1 - y0, x1 - x0)


@dataclass(frozen=True)
class ReviewItem(NamedImage):
    """One of the model's detections put to the user: `number` as listed (None once a later
    batch replaced the one it was listed in), centre (y, x) px, the model's confidence, and
    the answer: 'accepted' (a clean positive of the class), 'rejected' (a negative) or None.

    Examples
    --------
    `Review.propose` lists a batch and `Review.answer` answers it; here in the store itself:

    >>> import tempfile
    >>> from simsearch import PatchRecord
    >>> from simsearch.project.store import Store                  # what an open Project holds (project.store)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = Store(tmp.name)
    >>> _ = store.add_class("WBC")
    >>> detection = PatchRecord("slide7.png@0123456789ab", y=120.0, x=64.0, similarity=0.55)  # the model's confidence
    >>> item = store.set_review_batch("WBC", [detection])[0]
    >>> item.number, (item.y, item.x), item.confidence, item.answer
    (1, (120.0, 64.0), 0.55, None)
    >>> store.answer_review("WBC", [item.number], "accepted")
    >>> [item.answer for item in store.review_items("WBC")]
    ['accepted']
    >>> store.close(); tmp.cleanup()
    """

    number: int | None
    class_name: str
    image_id: str
    y: float
    x: float
    confidence: float
    answer: str | None = None
    level: float = 1.0  # of the scale pyramid: the detection's box is the patch of this level


@dataclass(frozen=True)
class PatchRecord(NamedImage):
    """A stored patch: image id, centre (y, x) px, where known its similarity, and its level
    of the scale pyramid (object size relative to the patch; 1 without a pyramid).

    Examples
    --------
    >>> from simsearch import PatchRecord
    >>> patch = PatchRecord("slide1.png@0123456789ab", y=56.0, x=100.0, similarity=0.71)
    >>> patch.level                                                # no scale pyramid: the patch size
    1.0
    >>> [(round(p.y), round(p.x)) for p in project.store.patches("WBC", "positive")]   # doctest: +SKIP
    [(56, 100), (212, 48)]
    """

    image_id: str
    y: float
    x: float
    similarity: float | None = None
    level: float = 1.0


class Store:
    """Open with Store(folder) for writing (takes the lock) or Store(folder, read_only=True)."""

    def __init__(self, folder: str | Path, *, read_only: bool = False):
        self.folder = Path(folder)
        self.path = ProjectLayout(self.folder).store_file
        self.read_only = read_only
        self._lock_handle = None
        # one connection, usable from worker threads (e.g. the UI's); SQLite serialises each
        # call, and this lock keeps a transaction's statements together
        self._transaction_lock = threading.RLock()
        self._depth = 0  # transactions open on this connection (nested ones join the outermost)
        if read_only:
            if not self.path.is_file():
                raise ProjectError(f"no project store at {self.path}")
        else:
            self._take_lock()
        try:
            if read_only:
                self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                            check_same_thread=False)
            else:
                self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=10, check_same_thread=False)
                self.conn.execute("PRAGMA journal_mode=WAL")  # reads the file's header first: nothing is written to
                self.conn.execute("PRAGMA synchronous=FULL")  # a file that is not a database
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.DatabaseError as exc:  # e.g. overwritten, or cut short at its header
            self.close()
            raise ProjectError(f"project store {self.path} cannot be read as a SQLite database ({exc}); it was left "
                               "as it is", hint="restore it from a backup (it holds the project's classes, "
                               "prototypes and answers), or choose another folder for a new project") from exc
        self._migrate()

    def _take_lock(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(ProjectLayout(self.folder).store_lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise ProjectLockedError(
                f"project {self.folder} is open for writing by {owner}",
                hint="close the other session, or open this one read-only",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._lock_handle = handle

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self.close()
            raise ProjectError(
                f"project store {self.path} has schema version {version}; this SimSearch knows up to {SCHEMA_VERSION}",
                hint="upgrade simsearch to open this project",
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise ProjectError(f"project store {self.path} needs an upgrade; open it once for writing")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            try:  # DDL, data changes and the new version commit together or not at all
                self.conn.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[target]}; PRAGMA user_version={target}; COMMIT;")
            except sqlite3.Error as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise ProjectError(f"cannot upgrade project store {self.path} to schema {target}: {exc}") from exc

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
            self.conn = None
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable unit of work: committed on success, rolled back on error. Inside
        another transaction it is part of that one, so that a multi-row action (an import) made
        of single actions commits as a whole or not at all."""
        if self.read_only:
            raise ProjectError(f"project {self.folder} is open read-only", hint="close other sessions and reopen for writing")
        with self._transaction_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self.conn.execute("COMMIT")

    # -- classes ----------------------------------------------------------------------------

    def classes(self) -> list[ClassInfo]:
        rows = self.conn.execute(
            "SELECT id, name, similarity_threshold, confidence_threshold, confirmed_at FROM classes ORDER BY id"
        ).fetchall()
        return [ClassInfo(r[0], r[1], r[2], r[3], r[4] is not None) for r in rows]

    def class_info(self, name: str) -> ClassInfo:
        for info in self.classes():
            if info.name == name:
                return info
        known = ", ".join(c.name for c in self.classes()) or "none yet"
        raise ConfigError(f"unknown class {name!r} (classes: {known})")

    def add_class(self, name: str, *, similarity_threshold: float = 0.5) -> ClassInfo:
        name = check_class_name(name)
        check_threshold(similarity_threshold, "similarity threshold")
        if any(c.name == name for c in self.classes()):
            raise ConfigError(f"class {name!r} already exists")
        with self.transaction() as conn:
            conn.execute("INSERT INTO classes (name, similarity_threshold, created_at) VALUES (?, ?, ?)",
                         (name, similarity_threshold, _now()))
        return self.class_info(name)

    def rename_class(self, old: str, new: str) -> None:
        info = self.class_info(old)
        new = check_class_name(new)
        if new != old and any(c.name == new for c in self.classes()):
            raise ConfigError(f"class {new!r} already exists")
        with self.transaction() as conn:
            conn.execute("UPDATE classes SET name = ? WHERE id = ?", (new, info.id))

    def delete_class(self, name: str, keep: Callable[[dict], None] | None = None) -> dict:
        """Delete a class and everything that belongs to it (prototypes, flags, positives,
        noisy patches, review answers); returns all of it as rows (`restore_class` brings it
        back). `keep(rows)` runs first, in the same transaction: if it fails, nothing is deleted."""
        info = self.class_info(name)
        with self.transaction() as conn:
            rows = {"format": 1, "classes": self._rows(conn, "classes", "id", info.id)}
            for table in _CLASS_TABLES:
                rows[table] = self._rows(conn, table, "class_id", info.id)
            if keep is not None:
                keep(rows)
            conn.execute("DELETE FROM classes WHERE id = ?", (info.id,))
        return rows

    @staticmethod
    def _rows(conn: sqlite3.Connection, table: str, column: str, value: int) -> list[dict]:
        cursor = conn.execute(f"SELECT * FROM {table} WHERE {column} = ? ORDER BY id", (value,))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def restore_class(self, rows: dict) -> ClassInfo:
        """Bring back a class deleted by `delete_class` from its rows, with the ids it had
        where they are still free (so it keeps its place among the classes). A ConfigError
        when a class of that name exists again; nothing changes then."""
        if rows.get("format") != 1 or len(rows.get("classes", [])) != 1:
            raise ConfigError("restore class: these are not the rows of one deleted class")
        name = rows["classes"][0]["name"]
        if any(c.name == name for c in self.classes()):
            raise ConfigError(f"restore class: a class {name!r} exists again", hint="rename or delete it first")
        with self.transaction() as conn:
            class_id = self._insert_rows(conn, "classes", rows["classes"], {})[0]
            for table in _CLASS_TABLES:
                self._insert_rows(conn, table, rows.get(table, []), {"class_id": class_id})
        return self.class_info(name)

    @staticmethod
    def _insert_rows(conn: sqlite3.Connection, table: str, rows: list[dict], override: dict) -> list[int]:
        """Insert rows into `table` with `override` applied, each with its old id when it is free."""
        columns = {d[1] for d in conn.execute(f"PRAGMA table_info({table})")}
        taken = {row[0] for row in conn.execute(f"SELECT id FROM {table}")}
        ids = []
        for row in rows:
            row = {key: value for key, value in {**row, **override}.items() if key in columns}
            if row.get("id") in taken:
                del row["id"]
            names = list(row)
            cursor = conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                                  [row[n] for n in names])
            ids.append(cursor.lastrowid)
        return ids

    def set_similarity_threshold(self, name: str, value: float) -> None:
        check_threshold(value, "similarity threshold")
        info = self.class_info(name)
        if float(value) == info.similarity_threshold:
            return
        with self.transaction() as conn:
            conn.execute("UPDATE classes SET similarity_threshold = ?, confirmed_at = NULL WHERE id = ?", (float(value), info.id))

    def set_confidence_threshold(self, name: str, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"confidence threshold: {value} is outside [0, 1]")
        info = self.class_info(name)
        with self.transaction() as conn:
            conn.execute("UPDATE classes SET confidence_threshold = ? WHERE id = ?", (float(value), info.id))

    # -- prototypes -------------------------------------------------------------------------

    def add_prototype(self, name: str, image_id: str, box: tuple[float, float, float, float]) -> Prototype:
        info = self.class_info(name)
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO prototypes (class_id, image_id, x0, y0, x1, y1, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (info.id, image_id, *map(float, box), _now()),
            )
            conn.execute("UPDATE classes SET confirmed_at = NULL WHERE id = ?", (info.id,))
        return Prototype(cursor.lastrowid, name, image_id, tuple(map(float, box)))

    def delete_prototype(self, prototype_id: int) -> None:
        with self.transaction() as conn:
            owner = conn.execute("SELECT class_id FROM prototypes WHERE id = ?", (prototype_id,)).fetchone()
            if owner is None:
                raise ConfigError(f"unknown prototype id {prototype_id}")
            conn.execute("DELETE FROM prototypes WHERE id = ?", (prototype_id,))
            conn.execute("UPDATE classes SET confirmed_at = NULL WHERE id = ?", owner)

    def prototypes(self, name: str | None = None) -> list[Prototype]:
        query = ("SELECT p.id, c.name, p.image_id, p.x0, p.y0, p.x1, p.y1 FROM prototypes p "
                 "JOIN classes c ON c.id = p.class_id")
        args: tuple = ()
        if name is not None:
            query += " WHERE c.id = ?"
            args = (self.class_info(name).id,)
        rows = self.conn.execute(query + " ORDER BY p.id", args).fetchall()
        return [Prototype(r[0], r[1], r[2], (r[3], r[4], r[5], r[6])) for r in rows]

    # -- positives and negatives ------------------------------------------------------------

    def set_negative(self, name: str, patch: PatchRecord, flagged: bool = True) -> None:
        """Flag (or unflag) a suggestion as not-this-class."""
        info = self.class_info(name)
        with self.transaction() as conn:
            conn.execute("DELETE FROM class_patches WHERE class_id = ? AND image_id = ? AND y = ? AND x = ?",
                         (info.id, patch.image_id, patch.y, patch.x))
            if flagged:
                conn.execute(
                    "INSERT INTO class_patches (class_id, kind, image_id, y, x, similarity, level, created_at) "
                    "VALUES (?, 'negative', ?, ?, ?, ?, ?, ?)",
                    (info.id, patch.image_id, patch.y, patch.x, patch.similarity, patch.level, _now()),
                )
            conn.execute("UPDATE classes SET confirmed_at = NULL WHERE id = ?", (info.id,))

    def confirm_class(self, name: str, threshold: float, positives: list[PatchRecord], *, confirmed: bool = True) -> None:
        """Record the threshold and the clean positives in one transaction. confirmed=False
        records them as not confirmed (how undoing a confirmation restores the state before)."""
        check_threshold(threshold, "similarity threshold")
        info = self.class_info(name)
        with self.transaction() as conn:
            conn.execute("DELETE FROM class_patches WHERE class_id = ? AND kind = 'positive'", (info.id,))
            conn.executemany(
                "INSERT OR IGNORE INTO class_patches (class_id, kind, image_id, y, x, similarity, level, created_at) "
                "VALUES (?, 'positive', ?, ?, ?, ?, ?, ?)",
                [(info.id, p.image_id, p.y, p.x, p.similarity, p.level, _now()) for p in positives],
            )
            conn.execute("UPDATE classes SET similarity_threshold = ?, confirmed_at = ? WHERE id = ?",
                         (float(threshold), _now() if confirmed else None, info.id))

    def patches(self, name: str, kind: str) -> list[PatchRecord]:
        if kind not in ("positive", "negative"):
            raise ConfigError(f"kind: 'positive' or 'negative', not {kind!r}")
        rows = self.conn.execute(
            "SELECT image_id, y, x, similarity, level FROM class_patches WHERE class_id = ? AND kind = ? ORDER BY id",
            (self.class_info(name).id, kind),
        ).fetchall()
        return [PatchRecord(*r) for r in rows]

    # -- background -------------------------------------------------------------------------

    def set_background_candidates(self, candidates: list[tuple[PatchRecord, str]]) -> None:
        """Replace unconfirmed candidates, each (patch, 'high' | 'low'), keeping user flags
        on patches proposed again."""
        with self.transaction() as conn:
            flagged = {(r[0], r[1], r[2]) for r in conn.execute(
                "SELECT image_id, y, x FROM background WHERE is_background = 0 AND confirmed = 0")}
            conn.execute("DELETE FROM background WHERE confirmed = 0")
            conn.executemany(
                "INSERT OR IGNORE INTO background (image_id, y, x, similarity, extreme, is_background, created_at, level) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(p.image_id, p.y, p.x, p.similarity, extreme, int((p.image_id, p.y, p.x) not in flagged), _now(), p.level)
                 for p, extreme in candidates],
            )

    def set_not_background(self, patch: PatchRecord, flagged: bool = True) -> None:
        with self.transaction() as conn:
            changed = conn.execute(
                "UPDATE background SET is_background = ? WHERE image_id = ? AND y = ? AND x = ?",
                (int(not flagged), patch.image_id, patch.y, patch.x),
            ).rowcount
            if not changed:
                raise ConfigError(f"({patch.y:.0f}, {patch.x:.0f}) in {patch.image_id} is not a background candidate")

    def confirm_background(self, patches: list[PatchRecord] | None = None, *, confirmed: bool = True) -> None:
        """Mark every candidate (or the given ones) confirmed; confirmed=False takes a
        confirmation back (how an undo restores the candidates as they were)."""
        with self.transaction() as conn:
            if patches is None:
                conn.execute("UPDATE background SET confirmed = ?", (int(confirmed),))
            else:
                conn.executemany("UPDATE background SET confirmed = ? WHERE image_id = ? AND y = ? AND x = ?",
                                 [(int(confirmed), p.image_id, p.y, p.x) for p in patches])

    def clean_background(self) -> list[PatchRecord]:
        """The confirmed candidates not flagged: the clean background training learns from."""
        return [p for p, _, is_background in self.background(confirmed_only=True) if is_background]

    def background(self, *, confirmed_only: bool = False) -> list[tuple[PatchRecord, str, bool]]:
        """(patch, 'high' | 'low', is_background) for every candidate (or every confirmed one)."""
        query = "SELECT image_id, y, x, similarity, level, extreme, is_background FROM background"
        if confirmed_only:
            query += " WHERE confirmed = 1"
        return [(PatchRecord(*r[:5]), r[5], bool(r[6])) for r in self.conn.execute(query + " ORDER BY id")]

    # -- noisy patches ----------------------------------------------------------------------

    def add_noisy(self, image_id: str, per_class: dict[str | None, list[PatchRecord]]) -> None:
        """Store one image's noisy patches and mark it done, atomically (resumable)."""
        ids = {c.name: c.id for c in self.classes()}
        with self.transaction() as conn:
            conn.execute("DELETE FROM noisy_patches WHERE image_id = ?", (image_id,))
            for name, patches in per_class.items():
                class_id = None if name is None else ids[name]
                conn.executemany(
                    "INSERT INTO noisy_patches (class_id, image_id, y, x, similarity, level) VALUES (?, ?, ?, ?, ?, ?)",
                    [(class_id, p.image_id, p.y, p.x, p.similarity, p.level) for p in patches],
                )
            conn.execute("INSERT OR REPLACE INTO noisy_done (image_id, done_at) VALUES (?, ?)", (image_id, _now()))

    def noisy_done(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT image_id FROM noisy_done")}

    def clear_noisy(self, source: str | None = None) -> None:
        """Forget every noisy patch; `source` records what the next extraction is made from."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM noisy_patches")
            conn.execute("DELETE FROM noisy_done")
            conn.execute("DELETE FROM settings WHERE key = 'noisy_source'")
            if source is not None:
                conn.execute("INSERT INTO settings (key, value) VALUES ('noisy_source', ?)", (source,))

    def noisy_source(self) -> str | None:
        """What the stored noisy patches were extracted from (see Curation.iter_noisy), or None."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = 'noisy_source'").fetchone()
        return row[0] if row else None

    def noisy(self, name: str | None) -> list[PatchRecord]:
        """Noisy patches of a class (None: noisy background)."""
        if name is None:
            rows = self.conn.execute("SELECT image_id, y, x, similarity, level FROM noisy_patches WHERE class_id IS NULL ORDER BY id")
        else:
            rows = self.conn.execute("SELECT image_id, y, x, similarity, level FROM noisy_patches WHERE class_id = ? ORDER BY id",
                                     (self.class_info(name).id,))
        return [PatchRecord(*r) for r in rows]

    def noisy_count(self, name: str | None) -> int:
        if name is None:
            return self.conn.execute("SELECT COUNT(*) FROM noisy_patches WHERE class_id IS NULL").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM noisy_patches WHERE class_id = ?",
                                 (self.class_info(name).id,)).fetchone()[0]


    # -- review of the model's detections --------------------------------------------------

    def set_review_batch(self, name: str, items: list[PatchRecord]) -> list[ReviewItem]:
        """Make `items` (their similarity: the model's confidence) the class's current batch,
        numbered from 1; earlier unanswered items go, answered ones stay (unnumbered)."""
        info = self.class_info(name)
        answered = {(r[0], r[1], r[2]) for r in self.conn.execute(
            "SELECT image_id, y, x FROM review_items WHERE class_id = ? AND answer IS NOT NULL", (info.id,))}
        fresh = [p for p in items if (p.image_id, p.y, p.x) not in answered]
        with self.transaction() as conn:
            conn.execute("DELETE FROM review_items WHERE class_id = ? AND answer IS NULL", (info.id,))
            conn.execute("UPDATE review_items SET number = NULL WHERE class_id = ?", (info.id,))
            conn.executemany(
                "INSERT INTO review_items (class_id, number, image_id, y, x, confidence, level, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(info.id, number, p.image_id, p.y, p.x, float(p.similarity), p.level, _now()) for number, p in enumerate(fresh, start=1)],
            )
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('review_class', ?)", (str(info.id),))
        return self.review_items(name)

    def review_items(self, name: str, *, current_only: bool = True) -> list[ReviewItem]:
        """The class's current batch in listed order (or every item ever answered or listed)."""
        info = self.class_info(name)
        query = "SELECT number, image_id, y, x, confidence, answer, level FROM review_items WHERE class_id = ?"
        query += " AND number IS NOT NULL ORDER BY number" if current_only else " ORDER BY id"
        return [ReviewItem(r[0], name, r[1], r[2], r[3], r[4], r[5], r[6]) for r in self.conn.execute(query, (info.id,))]

    def last_reviewed_class(self) -> str | None:
        """The class whose batch was listed last (answers without a class name go to it)."""
        row = self.conn.execute(
            "SELECT c.name FROM settings s JOIN classes c ON CAST(s.value AS INTEGER) = c.id WHERE s.key = 'review_class'"
        ).fetchone()
        return row[0] if row else None

    def answer_review(self, name: str, numbers: list[int], answer: str | None) -> None:
        """Answer items of the class's current batch by number ('accepted', 'rejected', or
        None to take an answer back), all or none: an unknown number changes nothing."""
        if answer is not None and answer not in REVIEW_ANSWERS:
            raise ConfigError(f"review answer: {answer!r} is not one of {', '.join(REVIEW_ANSWERS)}")
        info = self.class_info(name)
        listed = {r[0] for r in self.conn.execute("SELECT number FROM review_items WHERE class_id = ? AND number IS NOT NULL", (info.id,))}
        unknown = sorted(set(numbers) - listed)
        if unknown:
            raise ConfigError(f"review of {name!r}: no item numbered {unknown} in the current batch ({len(listed)} item(s))",
                              hint="list the batch again with `simsearch review CLASS --list`")
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE review_items SET answer = ?, answered_at = ? WHERE class_id = ? AND number = ?",
                [(answer, _now() if answer else None, info.id, number) for number in numbers],
            )

    def answer_review_at(self, name: str, places: list[tuple[str, float, float]], answer: str | None) -> None:
        """Answer items of the class by place (image id, y, x), whichever batch listed them, all
        or none: an item not found changes nothing."""
        if answer is not None and answer not in REVIEW_ANSWERS:
            raise ConfigError(f"review answer: {answer!r} is not one of {', '.join(REVIEW_ANSWERS)}")
        info = self.class_info(name)
        ids = []
        for image_id, y, x in places:
            row = self.conn.execute("SELECT id FROM review_items WHERE class_id = ? AND image_id = ? AND y = ? AND x = ?",
                                    (info.id, image_id, float(y), float(x))).fetchone()
            if row is None:
                raise ConfigError(f"review of {name!r}: no item at {image_id} y {float(y):g}, x {float(x):g}",
                                  hint="it went with a class deleted or a review batch replaced before it was answered")
            ids.append(row[0])
        with self.transaction() as conn:
            conn.executemany("UPDATE review_items SET answer = ?, answered_at = ? WHERE id = ?",
                             [(answer, _now() if answer else None, item) for item in ids])

    def review_answers(self, name: str, answer: str) -> list[PatchRecord]:
        """Every item of the class with this answer, current batch or earlier (training data)."""
        rows = self.conn.execute(
            "SELECT image_id, y, x, confidence, level FROM review_items WHERE class_id = ? AND answer = ? ORDER BY id",
            (self.class_info(name).id, answer),
        )
        return [PatchRecord(*r) for r in rows]


BACKGROUND = "background"  # the classifier's class after the ROI classes: no ROI class may take its name


def check_class_name(name: str) -> str:
    """The name stripped, or ConfigError when it is empty or the background's (in any case).

    Examples
    --------
    >>> check_class_name(" WBC ")
    'WBC'
    >>> check_class_name("Background")
    Traceback (most recent call last):
    ...
    simsearch.util.errors.ConfigError: class name 'Background': the background has this name ...
    """
    name = name.strip()
    if not name:
        raise ConfigError("class name: must not be empty")
    if name.casefold() == BACKGROUND:
        raise ConfigError(f"class name {name!r}: the background has this name (the classifier's class for everything "
                          "that is no ROI); choose another")
    return name


def check_threshold(value: float, what: str) -> float:
    """The value as a float, or ConfigError naming `what` when it is not a number in [-1, 1]."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {value!r} is not a number") from None
    if not -1.0 <= value <= 1.0:
        raise ConfigError(f"{what}: {value} is outside [-1, 1]")
    return value
