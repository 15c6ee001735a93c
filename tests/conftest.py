"""Fixtures shared by every test group."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt here and in the children started meanwhile, even when
    pytest runs as a background job: a shell starts those with SIGINT ignored, which ``exec`` passes on
    to children, while a signal with a handler is reset to its default there."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
