"""An established API fuzzer (schemathesis) pointed at `moa serve`'s published OpenAPI schema, on
scripted models: no request gives a 500, every error is in OpenAI's shape, none is slower than the
server's body timeout.

schemathesis runs in an environment of its own (``.venv-fuzz``, built here when missing): it needs a
newer ``jsonschema-rs`` than the `langgraph dev` of the test extra accepts.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from langchain_moa import MoAChatModel
from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.server.app import create_app
from langchain_moa.server.limits import Limits
from langchain_moa.server.registry import ModelRegistry
from tests.openai_endpoints import serve_in_thread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
FUZZ_VENV = ROOT / ".venv-fuzz"
SCHEMATHESIS = "schemathesis==4.32.5"
KEY = "fuzz-test-key-0123456789"
BODY_TIMEOUT = 5.0


def _schemathesis() -> str:
    command = FUZZ_VENV / "bin" / "schemathesis"
    if not command.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FUZZ_VENV)], check=True)
        subprocess.run([str(FUZZ_VENV / "bin" / "pip"), "install", "-q", SCHEMATHESIS], check=True)
    return str(command)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea"), ScriptedChatModel(answer="other idea")],
        aggregator=ScriptedChatModel(answer="An answer."),
    )
    limits = Limits(max_body_bytes=256 * 1024, body_timeout=BODY_TIMEOUT)
    root, server = serve_in_thread(
        create_app(ModelRegistry({"moa": lambda: moa}), api_key=KEY, limits=limits)
    )
    yield root
    server.should_exit = True


def test_the_server_publishes_its_request_schema(url: str) -> None:
    schema = httpx.get(f"{url}/openapi.json").json()
    body = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ChatRequest"}
    request = schema["components"]["schemas"]["ChatRequest"]
    assert {"model", "messages", "stream", "moa"} <= set(request["properties"])
    assert request["required"] == ["model", "messages"]
    events = schema["paths"]["/v1/moa/events"]["post"]["requestBody"]["content"]["application/json"]
    assert events["schema"] == {"$ref": "#/components/schemas/RunRequest"}  # fuzzed too


def test_schemathesis_finds_no_500_and_only_openai_shaped_errors(url: str, tmp_path: Path) -> None:
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
    run = subprocess.run(
        [_schemathesis(), "run", f"{url}/openapi.json", "--header", f"Authorization: Bearer {KEY}",
         "--checks", checks, "--max-examples", "150", "--max-response-time", str(BODY_TIMEOUT),
         "--seed", "1", "--workers", "2", "--no-color", "--phases", "examples,coverage,fuzzing"],
        capture_output=True, text=True, cwd=tmp_path, timeout=800,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated and int(generated[1]) >= 300 and generated[1] == generated[2], run.stdout[-2000:]
