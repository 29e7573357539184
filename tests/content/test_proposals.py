"""Generated copy waits as pending variants and is served only once approved."""

from __future__ import annotations

import json
from pathlib import Path

from fake_chat_server import FakeChatServer
from fastapi.testclient import TestClient

from penchant.privacy.keys import create_key
from penchant.service.app import create_app
from penchant.settings import load_settings


def test_proposals_are_pending_until_approved(tmp_path: Path) -> None:
    with FakeChatServer() as llm:
        llm.answer(json.dumps(["Autumn reads, picked for you", "Fresh this week"]))
        settings = load_settings(
            tmp_path, content={"generation_url": llm.url, "generation_model": "tiny"}
        )
        with TestClient(create_app(settings)) as client:
            store = client.app.state.store  # type: ignore[attr-defined]
            client.headers["Authorization"] = (
                f"Bearer {create_key(store.keys, 'default', ('admin',))}"
            )
            assert (
                client.put("/v1/slots/hero", json={"policy": {"name": "ucb1"}}).status_code == 200
            )
            client.put("/v1/slots/hero/variants/base", json={"text": "Our picks"})
            made = client.post("/v1/slots/hero/proposals", json={"brief": "autumn", "n": 2})
            assert made.status_code == 200, made.text
            proposed = made.json()["variants"]
            assert [v["text"] for v in proposed] == [
                "Autumn reads, picked for you",
                "Fresh this week",
            ]
            assert {v["status"] for v in proposed} == {"pending"}
            assert {v["source"] for v in proposed} == {"generated"}
            # the server saw the brief and the existing copy as examples
            sent = json.dumps(llm.received[0].body)
            assert "autumn" in sent and "Our picks" in sent
            assert llm.received[0].body["model"] == "tiny"

            def served() -> set[str]:
                body = {"slot": "hero", "session_id": "s"}
                return {
                    client.post("/v1/decisions", json=body).json()["variant"]["id"]
                    for _ in range(30)
                }

            assert served() == {"base"}  # pending copy is never served
            first = proposed[0]["id"]
            assert client.post(f"/v1/slots/hero/variants/{first}/approve").status_code == 204
            assert first in served()  # ucb1 tries an arm it has never pulled at once
            # a server that only repeats known copy proposes nothing: a clear error, and
            # nothing is stored twice
            again = client.post("/v1/slots/hero/proposals", json={"brief": "autumn", "n": 2})
            assert again.status_code == 422 and again.json()["error"]["field"] == "response"
            assert len(client.get("/v1/slots/hero").json()["variants"]) == 3


def test_an_unreachable_server_is_a_503_and_nothing_is_stored(tmp_path: Path) -> None:
    with FakeChatServer() as llm:
        llm.respond(500, "boom")
        settings = load_settings(tmp_path, content={"generation_url": llm.url})
        with TestClient(create_app(settings)) as client:
            store = client.app.state.store  # type: ignore[attr-defined]
            client.headers["Authorization"] = (
                f"Bearer {create_key(store.keys, 'default', ('admin',))}"
            )
            client.put("/v1/slots/hero", json={})
            failed = client.post("/v1/slots/hero/proposals", json={"brief": "x"})
            assert failed.status_code == 503
            listed = client.get("/v1/slots/hero").json()["variants"]
            assert listed == []
