"""Every path inside a project folder, in one place.

::

    project.yaml        settings (dataset, channels, geometry, backbone, normalisation, scales)
    flat_field.npy      the dataset's per-pixel background, when the project corrects by it
    store.sqlite        the curation store (classes, prototypes, flags, review answers)
    store.lock          held by the one writer
    embeddings/         the embedding cache (unless a shared cache was named at creation)
    index/<tag>/        the FAISS patch index of one set of embedding settings
    model/              model.pt and model.yaml of the saved model
    training/           checkpoint.pt and checkpoint.json of a run in progress, run.lock
    review/<model>/     the review round's cached candidates, one folder per model
    results/            what the terminal UI processes into unless told otherwise
    tui-state.yaml      the terminal UI's place (screen, class, thresholds being tried)
    tui-undo.json       the terminal UI's undo history
    deleted-classes/    each deleted class with all that was curated for it (`Curation.restore_class`)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simsearch.io.flatfield import FLAT_FIELD_FILE


@dataclass(frozen=True)
class ProjectLayout:
    """The paths of one project folder (nothing is created or read here).

    Examples
    --------
    >>> layout = ProjectLayout(Path("/data/screen1/project"))
    >>> layout.model_weights.relative_to(layout.folder).as_posix()
    'model/model.pt'
    >>> layout.review_folder("a1b2").relative_to(layout.folder).as_posix()
    'review/a1b2'
    """

    folder: Path

    @property
    def settings_file(self) -> Path:
        """project.yaml: the settings (dataset, channels, geometry, backbone, normalisation, scales)."""
        return self.folder / "project.yaml"

    def exists(self) -> bool:
        """Whether the folder holds a project (its settings file)."""
        return self.settings_file.is_file()

    @property
    def flat_field(self) -> Path:
        """The flat field's background (`FlatField`), named in project.yaml's normalisation."""
        return self.folder / FLAT_FIELD_FILE

    @property
    def store_file(self) -> Path:
        """store.sqlite: the curation store (classes, prototypes, flags, positives, review answers)."""
        return self.folder / "store.sqlite"

    @property
    def store_lock(self) -> Path:
        """store.lock: locked by the one writer of the store, and holding its process id."""
        return self.folder / "store.lock"

    @property
    def embeddings(self) -> Path:
        """The project's own embedding cache (a shared cache named at creation replaces it)."""
        return self.folder / "embeddings"

    def index_folder(self, tag: str) -> Path:
        """The index of the embedding settings `tag`."""
        return self.folder / "index" / tag

    @property
    def model(self) -> Path:
        """model/: the saved model (model.pt and model.yaml)."""
        return self.folder / "model"

    @property
    def model_weights(self) -> Path:
        """model.pt: the saved model's weights."""
        return self.model / "model.pt"

    @property
    def model_config(self) -> Path:
        """model.yaml: written after model.pt, with its hash."""
        return self.model / "model.yaml"

    @property
    def training(self) -> Path:
        """training/: the checkpoint of a run in progress and the lock held while one trains."""
        return self.folder / "training"

    @property
    def checkpoint(self) -> Path:
        """checkpoint.pt: the weights and state of the run in progress, written after every epoch."""
        return self.training / "checkpoint.pt"

    @property
    def checkpoint_summary(self) -> Path:
        """checkpoint.json: the run in progress's key, stage and epoch, and the checkpoint's size and
        modification time (so that they are read without unpickling checkpoint.pt)."""
        return self.training / "checkpoint.json"

    @property
    def training_lock(self) -> Path:
        """run.lock: locked while a run trains (one at a time), and holding its process id."""
        return self.training / "run.lock"

    def review_folder(self, model_identity: str) -> Path:
        """The review round's cache for the model `model_identity`."""
        return self.folder / "review" / model_identity

    @property
    def results(self) -> Path:
        """results/: where the terminal UI writes processed results unless told otherwise."""
        return self.folder / "results"

    @property
    def ui_state(self) -> Path:
        """tui-state.yaml: the terminal UI's place (screen, class, thresholds being tried)."""
        return self.folder / "tui-state.yaml"

    @property
    def ui_undo(self) -> Path:
        """tui-undo.json: the terminal UI's undo history."""
        return self.folder / "tui-undo.json"

    @property
    def deleted_classes(self) -> Path:
        """deleted-classes/: one JSON file per deleted class with all that was curated for it
        (`Curation.restore_class`)."""
        return self.folder / "deleted-classes"
