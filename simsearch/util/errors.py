"""One exception family for the whole engine.

Every error a user can cause carries a message that names the file or the
parameter at fault and, where one exists, a hint saying what to do instead.
"""
from __future__ import annotations


class SimSearchError(Exception):
    """Base class of every error the engine raises on purpose.

    `message` names the file or parameter at fault; `hint`, where there is one, says what to
    do instead (printed on a second line).

    Examples
    --------
    >>> from simsearch import SimSearchError, parse_channels
    >>> try:
    ...     parse_channels("0;2")
    ... except SimSearchError as error:      # any of the subclasses below
    ...     print(error)
    channels: '0;2' is not a list of channel numbers
      hint: e.g. 0,2,1
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ImageReadError(SimSearchError):
    """A single image file could not be read (unreadable, truncated, unsupported).

    Examples
    --------
    >>> from simsearch import ImageReadError, read_image
    >>> try:
    ...     read_image("notes.txt")
    ... except ImageReadError as error:
    ...     print(error)
    cannot read image 'notes.txt': unsupported file type '.txt' (supported: .tif, .tiff, .png, .jpg, .jpeg, .bmp, .zarr)
    """


class DatasetError(SimSearchError):
    """The dataset as a whole is unusable (empty, inconsistent channels, bad source).

    Examples
    --------
    >>> import tempfile
    >>> from simsearch import Dataset, DatasetError
    >>> with tempfile.TemporaryDirectory() as empty_folder:
    ...     try:
    ...         Dataset.open(empty_folder)
    ...     except DatasetError as error:
    ...         print(error.hint)
    supported file types: .tif, .tiff, .png, .jpg, .jpeg, .bmp, .zarr
    """


class WeightsError(SimSearchError):
    """Pretrained backbone weights are missing, corrupt or do not fit the architecture.

    Examples
    --------
    >>> from simsearch import WeightsError, load_backbone
    >>> try:
    ...     load_backbone("efficientnet-lite0", weights="no/such/weights.pth")
    ... except WeightsError as error:
    ...     print(error.message)     # doctest: +ELLIPSIS
    efficientnet-lite0: weights file not found: .../no/such/weights.pth
    """


class ConfigError(SimSearchError):
    """A setting or parameter has an invalid value.

    Examples
    --------
    >>> from simsearch import ConfigError, PatchGeometry
    >>> try:
    ...     PatchGeometry.for_patch(2)
    ... except ConfigError as error:
    ...     print(error)
    patch_size: 2x2 px is too small (at least 4x4)
    """


class ProjectError(SimSearchError):
    """A project folder is missing, inconsistent or was made with other settings.

    Examples
    --------
    >>> import tempfile
    >>> from simsearch import Project, ProjectError
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     try:
    ...         Project.open(folder)
    ...     except ProjectError as error:
    ...         print(error.hint)
    create one with `simsearch embed DATASET --project DIR`
    """


class ImagesMovedError(ProjectError):
    """A project's images are not where it recorded them (moved, or a drive not mounted):
    `Project.open(folder, dataset=NEW_PLACE)` re-points it.

    Examples
    --------
    >>> issubclass(ImagesMovedError, ProjectError)
    True
    """
