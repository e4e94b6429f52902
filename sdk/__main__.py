"""``python -m maskgate``: the ``maskgate`` command (the release agent runs its checks this way)."""
from .cli import entry

entry()
