"""A MoA described by a TOML file, its proposers on two OpenAI-compatible servers started on localhost.

The two servers are `moa serve`'s app with scripted models behind it: any OpenAI-compatible endpoint
would do, and these answer in a way that says which one answered.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from langchain_moa import MoAChatModel, MoAConfigError
from tests.openai_endpoints import Endpoint, start_endpoint

MOA = str(Path(sys.executable).with_name("moa"))
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "configs" / "two-endpoints.toml"


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[Endpoint, Endpoint]]:
    a, b = start_endpoint("from server A"), start_endpoint("from server B")
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def keys(endpoints: tuple[Endpoint, Endpoint], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    a, b = endpoints
    monkeypatch.setenv("KEY_A", a.key)
    monkeypatch.setenv("KEY_B", b.key)
    return a.url, b.url


def test_each_proposer_on_its_own_endpoint(
    tmp_path: Path, keys: tuple[str, str], config_file: Callable[..., Path]
) -> None:
    moa = MoAChatModel.from_config(config_file(tmp_path, *keys))
    answer = moa.invoke("Q")
    assert [p["content"] for p in answer.response_metadata["moa"]["layers"][0]] == [
        "from server A",
        "from server B",
    ]
    assert answer.content == "from server A"


def test_the_command_line_reads_it_and_flags_go_over_it(
    tmp_path: Path, keys: tuple[str, str], config_file: Callable[..., Path]
) -> None:
    # A process of its own, as a user runs it (one event loop for its models' HTTP clients).
    done = subprocess.run([MOA, "--config", str(config_file(tmp_path, *keys)), "--quiet", "--layers", "1", "Q"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "from server A"


def test_the_example_file_is_valid_but_for_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_moa.config_file import load_config

    monkeypatch.delenv("GPU_A_KEY", raising=False)
    with pytest.raises(
        MoAConfigError, match=rf"{EXAMPLE.name}:19: proposers\[0\].api_key_env: GPU_A_KEY is not set"
    ):
        load_config(EXAMPLE)
    monkeypatch.setenv("GPU_A_KEY", "a")
    monkeypatch.setenv("GPU_B_KEY", "b")
    fields = load_config(EXAMPLE)  # the models are made, nothing is called
    assert fields["staircase"] == 16 and len(fields["proposers"]) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("stairs = 3", r"moa.toml:3: stairs: unknown field"),
        ("staircase = 0", r"moa.toml:3: staircase must be an integer >= 1"),
        ("temperature = -1", r"moa.toml:3: temperature must be a number >= 0"),
    ],
)
def test_a_bad_option_names_the_file_line_and_field(
    tmp_path: Path, keys: tuple[str, str], extra: str, message: str, config_file: Callable[..., Path]
) -> None:
    with pytest.raises(MoAConfigError, match=message):
        MoAChatModel.from_config(config_file(tmp_path, *keys, extra))


def test_a_key_in_the_file_or_an_unknown_model_field_is_refused(
    tmp_path: Path, keys: tuple[str, str], config_file: Callable[..., Path]
) -> None:
    path = config_file(tmp_path, *keys)
    path.write_text(path.read_text().replace('api_key_env = "KEY_B"', 'api_key = "sk-secret"'))
    with pytest.raises(
        MoAConfigError, match=r"moa.toml:14: proposers\[1\].api_key: keys never go in the file"
    ) as caught:
        MoAChatModel.from_config(path)
    assert "sk-secret" not in str(caught.value)
    path.write_text(
        config_file(tmp_path, *keys)
        .read_text()
        .replace('model = "m"\nbase_url', 'model = "m"\nbase_ur = "x"\nbase_url', 1)
    )
    with pytest.raises(
        MoAConfigError, match=r"moa.toml:7: proposers\[0\].base_ur: Extra inputs are not permitted"
    ):
        MoAChatModel.from_config(path)


def test_an_unreachable_endpoint_names_the_model_and_the_url(
    tmp_path: Path, keys: tuple[str, str], config_file: Callable[..., Path], free_port: Callable[[], int]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    moa = MoAChatModel.from_config(config_file(tmp_path, keys[0], dead), max_retries=0, min_proposals=2)
    with pytest.raises(Exception, match=rf"proposer 2 \(m\): .*\(endpoint {dead}\)"):
        moa.invoke("Q")
