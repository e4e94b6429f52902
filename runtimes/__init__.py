"""Runtime backends behind one small runner contract (see ``maskgate.runtimes.base``).

Each backend lives in its own module and imports its framework only when used.
"""

if __name__ != "maskgate.runtimes":  # the folder runtimes/ installs as maskgate.runtimes (pyproject.toml)
    raise ImportError(f"import maskgate.runtimes, not {__name__}: the runtimes/ folder is installed as "
                      "maskgate.runtimes (pip install -e . in the checkout)")

from .base import Runner

__all__ = ["Runner"]
