"""The copy-generation adapter against a real local HTTP server that speaks the protocol."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from fake_chat_server import FakeChatServer

from penchant.content.generate import (
    MAX_PROPOSAL_CHARS,
    SHOWN_EXAMPLES,
    GenerationConfig,
    propose_copy,
)
from penchant.errors import ConfigError, InvalidInput, Unavailable

KEY = "sk-test-9c1e5d0b7a"
EXAMPLES = ["Free shipping on every order", "Your cart misses you"]


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    with FakeChatServer() as running:
        yield running


def ask(server: FakeChatServer, n: int = 3, **config: object) -> list[str]:
    settings = {"url": server.url, "model": "tiny-chat", **config}
    return propose_copy(
        GenerationConfig(**settings),  # type: ignore[arg-type]
        slot="cart_banner",
        brief="Remind people of their cart, friendly, under 60 characters.",
        examples=EXAMPLES,
        n=n,
    )


def test_request_follows_the_protocol(server: FakeChatServer) -> None:
    server.answer(json.dumps(["Still thinking it over?", "Come back for your picks"]))
    got = ask(server, n=2, temperature=0.3, max_tokens=123)
    assert got == ["Still thinking it over?", "Come back for your picks"]
    [request] = server.received
    assert request.path == "/v1/chat/completions"
    assert "authorization" not in request.headers
    body = request.body
    assert (body["model"], body["temperature"], body["max_tokens"], body["n"]) == (
        "tiny-chat",
        0.3,
        123,
        1,
    )
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert "2 distinct variants" in system["content"]
    assert "JSON array of 2 strings" in system["content"]
    assert "cart_banner" in user["content"]
    assert "Remind people of their cart, friendly, under 60 characters." in user["content"]
    assert all(example in user["content"] for example in EXAMPLES)


@pytest.mark.parametrize(
    ("suffix", "path"),
    [
        ("", "/v1/chat/completions"),
        ("/", "/v1/chat/completions"),
        ("/v1", "/v1/chat/completions"),
        ("/v1/", "/v1/chat/completions"),
        ("/openai/v1", "/openai/v1/chat/completions"),
        ("/api", "/api/v1/chat/completions"),
    ],
)
def test_endpoint_rule(server: FakeChatServer, suffix: str, path: str) -> None:
    server.answer('["A fresh line"]')
    propose_copy(
        GenerationConfig(url=server.url + suffix, model="m"),
        slot="s",
        brief="b",
        examples=[],
        n=1,
    )
    assert server.received[0].path == path


def test_api_key_is_sent_as_bearer_and_never_logged(
    server: FakeChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.answer('["A fresh line"]')
    caplog.set_level(logging.DEBUG)
    ask(server, n=1, api_key=KEY)
    assert server.received[0].headers["authorization"] == f"Bearer {KEY}"
    assert caplog.records, "the request should be logged"
    assert KEY not in caplog.text
    assert KEY not in repr(GenerationConfig(url=server.url, model="m", api_key=KEY))


def test_caller_client_is_used(server: FakeChatServer) -> None:
    server.answer('["A fresh line"]')
    with httpx.Client(headers={"X-Trace": "t-42"}) as client:
        propose_copy(
            GenerationConfig(url=server.url, model="m"),
            slot="s",
            brief="b",
            examples=[],
            n=1,
            client=client,
        )
    assert server.received[0].headers["x-trace"] == "t-42"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('["One", "Two", "Three"]', ["One", "Two", "Three"]),
        ('{"variants": ["One", "Two"]}', ["One", "Two"]),
        ('```json\n["One", "Two"]\n```', ["One", "Two"]),
        ('Sure! Here they are:\n["One", "Two"]\nEnjoy.', ["One", "Two"]),
        ('[{"id": 1, "text": "One"}, {"text": "Two"}]', ["One", "Two"]),
        ('["One", "Two", "Thr', ["One", "Two"]),  # cut short by max_tokens
        ('Here are three:\n1. "One"\n2) Two\n3. \u201cThree\u201d\n', ["One", "Two", "Three"]),
        ("- One\n* Two\n\u2022 Three", ["One", "Two", "Three"]),
        ("One\n\nTwo\n", ["One", "Two"]),
        ('["  One   more  time ", "1. Two"]', ["One more time", "Two"]),
    ],
)
def test_answer_formats(server: FakeChatServer, content: str, expected: list[str]) -> None:
    server.answer(content)
    assert ask(server, n=5) == expected


def test_drops_empties_repeats_examples_and_long_proposals(server: FakeChatServer) -> None:
    too_long = "x" * (MAX_PROPOSAL_CHARS + 1)
    longest = "y" * MAX_PROPOSAL_CHARS
    server.answer(
        json.dumps(
            [
                "",
                "  ",
                "New one",
                "new  ONE",
                "free shipping on every order",
                too_long,
                longest,
                "Third",
                "Fourth",
            ]
        )
    )
    assert ask(server, n=3) == ["New one", longest, "Third"]


def test_prompt_shows_a_bounded_number_of_examples(server: FakeChatServer) -> None:
    examples = [f"Example number {i}" for i in range(SHOWN_EXAMPLES + 5)]
    server.answer(json.dumps(["Example number 33", "Brand new"]))
    got = propose_copy(
        GenerationConfig(url=server.url, model="m"), slot="s", brief="b", examples=examples, n=2
    )
    assert got == ["Brand new"]  # an example the prompt did not show is still never returned
    user = server.received[0].body["messages"][1]["content"]
    assert f"Example number {SHOWN_EXAMPLES - 1}\n" in user + "\n"
    assert f"Example number {SHOWN_EXAMPLES}" not in user


def test_nothing_usable_is_an_error(server: FakeChatServer) -> None:
    server.answer(json.dumps(EXAMPLES))
    with pytest.raises(InvalidInput) as err:
        ask(server)
    assert err.value.field == "response"


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_server_failure_is_unavailable(server: FakeChatServer, status: int) -> None:
    server.respond(status, json.dumps({"error": {"message": f"overloaded, key {KEY}"}}))
    with pytest.raises(Unavailable) as err:
        ask(server, api_key=KEY)
    message = err.value.message
    assert f"HTTP {status}: overloaded" in message
    assert KEY not in message and KEY not in str(err.value)
    assert "\n" not in message


@pytest.mark.parametrize(("status", "hint"), [(401, "api_key"), (404, "url and model"), (400, "")])
def test_refused_request_is_a_config_error(server: FakeChatServer, status: int, hint: str) -> None:
    server.respond(status, json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}))
    with pytest.raises(ConfigError) as err:
        ask(server, api_key=KEY)
    assert f"HTTP {status}" in err.value.message
    assert hint in err.value.message
    assert KEY not in err.value.message
    assert "***" in err.value.message


def test_non_json_answer_is_invalid(server: FakeChatServer) -> None:
    server.respond(200, "<html>gateway</html>", content_type="text/html")
    with pytest.raises(InvalidInput) as err:
        ask(server, api_key=KEY)
    assert err.value.field == "response"
    assert "not JSON" in err.value.message


@pytest.mark.parametrize(
    "payload",
    [{}, {"choices": []}, {"choices": [{"text": "legacy"}]}, {"choices": [{"message": {}}]}],
)
def test_missing_choices_is_invalid(server: FakeChatServer, payload: dict[str, object]) -> None:
    server.respond(200, json.dumps(payload))
    with pytest.raises(InvalidInput) as err:
        ask(server)
    assert "choices[0].message.content" in err.value.message


def test_non_text_content_is_invalid(server: FakeChatServer) -> None:
    server.respond(200, json.dumps({"choices": [{"message": {"content": None}}]}))
    with pytest.raises(InvalidInput, match="not text"):
        ask(server)


def test_timeout_is_unavailable(server: FakeChatServer) -> None:
    server.stall(5.0)
    with pytest.raises(Unavailable) as err:
        ask(server, timeout_s=0.2, api_key=KEY)
    assert "no answer within 0.2 s" in err.value.message
    assert KEY not in err.value.message


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = GenerationConfig(url=f"http://127.0.0.1:{port}", model="m", api_key=KEY)
    with pytest.raises(Unavailable) as err:
        propose_copy(config, slot="s", brief="b", examples=[], n=1)
    assert "cannot be reached" in err.value.message
    assert KEY not in err.value.message


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 51}, "n"),
        ({"n": True}, "n"),
        ({"brief": "  "}, "brief"),
        ({"slot": ""}, "slot"),
        ({"examples": "one string"}, "examples"),
    ],
)
def test_bad_arguments(server: FakeChatServer, arguments: dict[str, object], field: str) -> None:
    call = {"slot": "s", "brief": "b", "examples": [], "n": 1, **arguments}
    with pytest.raises(InvalidInput) as err:
        propose_copy(GenerationConfig(url=server.url, model="m"), **call)  # type: ignore[arg-type]
    assert err.value.field == field
    assert server.received == []


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"url": "ftp://host"}, "url"),
        ({"url": "localhost:8080"}, "url"),
        ({"model": " "}, "model"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"temperature": 2.5}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_config(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        GenerationConfig(**{"url": "http://127.0.0.1:1", "model": "m", **settings})  # type: ignore[arg-type]
    assert err.value.field == field
