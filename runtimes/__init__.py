"""Runtime backends behind one small runner contract (see ``runtimes.base``).

Each backend lives in its own module and imports its framework only when used.
"""
from .base import Runner

__all__ = ["Runner"]
