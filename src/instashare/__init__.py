"""InstaShare: an async file-sharing backend."""

__version__ = "0.1.0"
