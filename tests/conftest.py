"""Fixtures the tests share (pytest finds them here; nothing to import).

Helpers that are plain functions live in modules of this folder and are imported as
``from tests.<module> import ...`` (``pythonpath = ["."]`` in pyproject.toml makes that work
from a fresh clone with ``pytest`` or ``python -m pytest``); importing one has no side effects.
"""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def offline(monkeypatch):
    """No connection can be opened: code that needs the network meets the error it would meet
    on a machine without one (an OSError from connect)."""

    def refuse(*args, **kwargs):
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
