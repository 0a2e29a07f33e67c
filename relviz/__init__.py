"""relviz: a visual explorer for relation models in computer vision."""

__version__ = "0.1.0"
