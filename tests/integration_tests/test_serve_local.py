"""`moa serve --preset local` on a fresh machine with no key: the embedded model behind the OpenAI API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from tests.openai_endpoints import serve_in_thread

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

MOA = str(Path(sys.executable).with_name("moa"))
KEY = "local-serve-key-9876543210"


def test_moa_serve_answers_with_the_local_model_and_keeps_it_loaded(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    server = subprocess.Popen(
        [MOA, "serve", "--preset", "local", "--max-tokens", "24", "--temperature", "0", "--port", str(port)],
        env={**env, "MOA_SERVE_API_KEY": KEY}, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if (
                    httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=300)
        assert "moa-local" in [m.id for m in client.models.list()]
        first = client.chat.completions.create(
            model="moa-local", messages=[{"role": "user", "content": "Say hi."}]
        )
        assert first.choices[0].message.content and first.usage and first.usage.completion_tokens > 0
        started = time.monotonic()
        second = client.chat.completions.create(
            model="moa-local", messages=[{"role": "user", "content": "2+2?"}]
        )
        assert second.choices[0].message.content
        assert time.monotonic() - started < 60  # the model stayed loaded: no new server, no new weights check
        stream = client.chat.completions.create(
            model="moa-local", messages=[{"role": "user", "content": "Name a color."}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip()
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert KEY not in log.read_text()  # the key is never logged


@pytest.mark.parametrize("staircase", [None, 8])
def test_a_client_leaving_mid_stream_frees_the_local_model_slots(staircase: int | None) -> None:
    # With staircase the proposers are still writing when the answer starts: they stop too.
    from langchain_moa import MoAChatModel
    from langchain_moa.local.server import running_servers
    from langchain_moa.server.app import create_app
    from langchain_moa.server.registry import ModelRegistry

    moa = MoAChatModel.from_preset("local", max_tokens=400, temperature=0.7, staircase=staircase)
    url, server = serve_in_thread(create_app(ModelRegistry({"moa-local": lambda: moa})))
    try:
        body = {"model": "moa-local", "stream": True,
                "messages": [{"role": "user", "content": "Write a long essay about the history of Rome."}]}  # fmt: skip
        with (
            httpx.Client(base_url=url, timeout=300) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            assert next(response.iter_lines()).startswith(
                "data: "
            )  # the aggregator streams; the client leaves
        (local,) = [s for s in running_servers() if not s.embedding]
        key = local.api_key.get_secret_value()
        deadline = time.monotonic() + 15
        while True:
            slots = httpx.get(local.base_url.removesuffix("/v1") + "/slots",
                              headers={"Authorization": f"Bearer {key}"}, timeout=10).json()  # fmt: skip
            if not any(slot["is_processing"] for slot in slots):
                break
            assert time.monotonic() < deadline, "a llama.cpp slot went on generating after the client left"
            time.sleep(0.2)
    finally:
        server.should_exit = True


def test_structured_output_with_the_local_model_parses_or_fails_naming_why() -> None:
    # The 0.5B model may or may not call the schema as a function: either the official client's
    # parse() gets the object, or the server says why with a 502; never a 500 or a wrong object.
    from pydantic import BaseModel

    from langchain_moa import MoAChatModel
    from langchain_moa.server.app import create_app
    from langchain_moa.server.registry import ModelRegistry

    class City(BaseModel):
        name: str
        country: str

    moa = MoAChatModel.from_preset("local", max_tokens=96, temperature=0)
    url, server = serve_in_thread(create_app(ModelRegistry({"moa-local": lambda: moa})))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
    try:
        reply = client.beta.chat.completions.parse(
            model="moa-local",
            messages=[{"role": "user", "content": "Name the capital of France and its country."}],
            response_format=City,
        )
        assert isinstance(reply.choices[0].message.parsed, City)
    except openai.APIStatusError as error:
        assert error.status_code == 502, error
        assert "did not answer in the schema 'City'" in error.body["message"]  # type: ignore[index]
    finally:
        server.should_exit = True
