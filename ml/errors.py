"""Exceptions the library raises, each with a message a user can act on."""


class CXRError(Exception):
    """Base class for every error the library raises on purpose."""


class DatasetError(CXRError):
    """A dataset cannot be read: a missing file, column, folder or a wrong shape."""


class ModelError(CXRError):
    """A model cannot be built or loaded (unknown name, missing pretrained weights, bad checkpoint)."""


class ImageError(CXRError):
    """An image cannot be decoded (empty, truncated, not an image)."""


class ImageTooLargeError(ImageError):
    """An image's declared pixel count exceeds the allowed limit (decompression bombs)."""


class UnsupportedImageError(ImageError):
    """The image is valid but its format or encoding is not supported here (e.g. a DICOM codec is missing)."""


class ConfigError(CXRError):
    """A configuration value is invalid."""


class TrainingCancelled(CXRError):
    """Raised inside `fit` when the reporter asks to stop."""
