"""Penchant: a self-hosted, privacy-first personalization engine."""

__version__ = "0.1.0"

DEFAULT_TENANT = "default"

__all__ = ["DEFAULT_TENANT", "__version__"]
