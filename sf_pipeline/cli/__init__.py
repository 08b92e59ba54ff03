"""The ``sf-pipeline`` command (``main.py``), its ``check-connections`` (``connections.py``), the demo
(``demo.py``) and its progress display (``progress.py``). May import anything; nothing imports it."""

from .main import main

__all__ = ["main"]
