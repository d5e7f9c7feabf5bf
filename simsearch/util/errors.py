"""One exception family for the whole engine.

Every error a user can cause carries a message that names the file or the
parameter at fault and, where one exists, a hint saying what to do instead.
"""
from __future__ import annotations


class SimSearchError(Exception):
    """Base class of every error the engine raises on purpose."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ImageReadError(SimSearchError):
    """A single image file could not be read (unreadable, truncated, unsupported)."""


class DatasetError(SimSearchError):
    """The dataset as a whole is unusable (empty, inconsistent channels, bad source)."""


class WeightsError(SimSearchError):
    """Pretrained backbone weights are missing, corrupt or do not fit the architecture."""


class ConfigError(SimSearchError):
    """A setting or parameter has an invalid value."""


class ProjectError(SimSearchError):
    """A project folder is missing, inconsistent or was made with other settings."""
