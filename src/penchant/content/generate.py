"""Proposed copy for a slot from any OpenAI-compatible chat-completions server, offline.

A local llama.cpp or vLLM server (or any server speaking the same protocol) is asked for
short variants of a slot's copy. This runs offline, from a job or an admin action, never
while serving: what it returns are proposals, which the slot store keeps pending until a
person approves them.

The endpoint is `{url}/chat/completions` when `url` ends with `/v1`, and
`{url}/v1/chat/completions` otherwise, so `http://127.0.0.1:8080` and
`http://127.0.0.1:8080/v1` name the same server, and a server under a path prefix works
when the prefix ends with `/v1` (`https://host/openai/v1`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from penchant.errors import ConfigError, InvalidInput, Unavailable

log = logging.getLogger(__name__)

#: The longest proposal kept; longer ones are dropped, not cut (a cut sentence is no copy).
MAX_PROPOSAL_CHARS: Final = 500
MAX_PROPOSALS: Final = 50
#: How many examples the prompt shows (all of them are still never returned).
SHOWN_EXAMPLES: Final = 30

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
_MARKER = re.compile(r"^\s*(?:[-*\u2022\u2023\u2013]|\(?\d{1,3}[.):]|#\d{1,3}:?)\s+")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_QUOTES: Final = ('"', "'", "\u201c\u201d", "\u2018\u2019", "\u00ab\u00bb", "`")


@dataclass(frozen=True)
class GenerationConfig:
    """Where and how to ask for copy.

    Attributes:
        url: the server's base URL, e.g. `http://127.0.0.1:8080/v1` (see the module note).
        model: the model name the server knows.
        api_key: sent as a bearer token when set; never logged, shown or put in a message.
        timeout_s: seconds to wait for the whole answer.
        temperature: sampling temperature (0 to 2).
        max_tokens: the most tokens the answer may have.

    Raises:
        ConfigError: a value that cannot work (a URL that is not http(s), an empty model,
            a non-positive timeout, a temperature outside 0-2, max_tokens below 1).
    """

    url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30
    temperature: float = 0.8
    max_tokens: int = 400

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.url or ""):
            raise ConfigError("url: must be an http:// or https:// URL", field="url")
        if not self.model or not self.model.strip():
            raise ConfigError("model: must not be empty", field="model")
        if not self.timeout_s > 0:
            raise ConfigError("timeout_s: must be above 0", field="timeout_s")
        if not 0 <= self.temperature <= 2:
            raise ConfigError("temperature: must be from 0 to 2", field="temperature")
        if self.max_tokens < 1:
            raise ConfigError("max_tokens: must be at least 1", field="max_tokens")

    @property
    def endpoint(self) -> str:
        """The chat-completions URL this config posts to."""
        base = self.url.rstrip("/")
        return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


def propose_copy(
    config: GenerationConfig,
    *,
    slot: str,
    brief: str,
    examples: Sequence[str],
    n: int,
    client: httpx.Client | None = None,
) -> list[str]:
    """Ask the server for up to `n` new variants of a slot's copy.

    The answer may be a JSON array of strings, a JSON object holding such a list under any
    key, or numbered or bulleted lines (markdown fences around any of them are fine).
    Quotes and numbering are stripped; empty proposals, proposals over
    `MAX_PROPOSAL_CHARS`, repeats and copies of an example (ignoring case and spacing) are
    dropped, and at most `n` are kept.

    Args:
        config: the server and sampling settings.
        slot: the slot's name, shown to the model.
        brief: what the copy should say and how.
        examples: the slot's existing copy: the first `SHOWN_EXAMPLES` are shown to the
            model, and none is ever returned.
        n: how many variants to ask for (1 to 50).
        client: an httpx client to reuse; a new one (which ignores proxy environment
            variables) is made and closed when None.

    Returns:
        The new proposals, in the model's order; fewer than `n` when some were dropped,
        never none.

    Raises:
        InvalidInput: bad arguments (field names which), or an answer that is not a chat
            completion or holds no usable proposal (field "response").
        Unavailable: the server cannot be reached, did not answer within the timeout,
            is busy (HTTP 408, 429) or failed (HTTP 5xx).
        ConfigError: the server refused the request (another HTTP 4xx: a wrong URL, model,
            key or max_tokens).
    """
    _check_arguments(slot, brief, examples, n)
    body = {
        "model": config.model,
        "messages": _messages(slot, brief, examples, n),
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "n": 1,
        "stream": False,
    }
    headers = {"Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    log.info(
        "asking %s (model %s) for %d proposals for slot %s", config.endpoint, config.model, n, slot
    )
    if client is None:
        with httpx.Client(trust_env=False) as own:
            response = _post(own, config, body, headers)
    else:
        response = _post(client, config, body, headers)
    content = _content(response, config)
    return _proposals(content, examples, n)


def _check_arguments(slot: str, brief: str, examples: Sequence[str], n: int) -> None:
    if not isinstance(slot, str) or not slot.strip():
        raise InvalidInput("slot: must be a non-empty string", field="slot")
    if not isinstance(brief, str) or not brief.strip():
        raise InvalidInput("brief: must be a non-empty string", field="brief")
    if len(brief) > 4000:
        raise InvalidInput("brief: must be at most 4000 characters", field="brief")
    if isinstance(examples, str) or not all(isinstance(e, str) for e in examples):
        raise InvalidInput("examples: must be a list of strings", field="examples")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PROPOSALS:
        raise InvalidInput(f"n: must be an integer from 1 to {MAX_PROPOSALS}", field="n")


def _messages(slot: str, brief: str, examples: Sequence[str], n: int) -> list[dict[str, str]]:
    system = (
        "You write short marketing and product copy. Propose "
        f"{n} distinct variants for the slot the user describes. Each variant is complete "
        f"on its own, at most {MAX_PROPOSAL_CHARS} characters, and differs from every "
        f"existing example. Answer with only a JSON array of {n} strings, nothing else."
    )
    shown = "\n".join(f"- {' '.join(e.split())}" for e in examples[:SHOWN_EXAMPLES])
    user = f"Slot: {slot}\nBrief: {brief}\nExisting examples, not to repeat:\n{shown or '(none)'}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _post(
    client: httpx.Client, config: GenerationConfig, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    where = f"generation server {config.endpoint}"
    try:
        response = client.post(
            config.endpoint, json=body, headers=headers, timeout=config.timeout_s
        )
    except httpx.TimeoutException as exc:
        raise Unavailable(f"{where}: no answer within {config.timeout_s:g} s", field="url") from exc
    except httpx.InvalidURL as exc:
        raise ConfigError(_scrub(f"{where}: invalid URL: {exc}", config), field="url") from exc
    except httpx.TransportError as exc:
        reason = _scrub(str(exc) or type(exc).__name__, config)
        raise Unavailable(f"{where}: cannot be reached: {reason}", field="url") from exc
    status = response.status_code
    if status < 300:
        return response
    detail = _error_detail(response, config)
    if status >= 500 or status in (408, 429):
        raise Unavailable(f"{where}: answered HTTP {status}{detail}", field="url")
    hint = {401: "check api_key", 403: "check api_key", 404: "check url and model"}.get(
        status, "check url, model and max_tokens"
    )
    raise ConfigError(f"{where}: refused the request, HTTP {status}{detail} ({hint})", field="url")


def _error_detail(response: httpx.Response, config: GenerationConfig) -> str:
    """The server's own error message, on one line, short, and without the key."""
    try:
        payload = response.json()
        message = (
            payload["error"]["message"] if isinstance(payload["error"], dict) else payload["error"]
        )
    except (ValueError, KeyError, TypeError):
        message = response.text
    text = " ".join(_scrub(str(message), config).split())[:200]
    return f": {text}" if text else ""


def _scrub(text: str, config: GenerationConfig) -> str:
    return text.replace(config.api_key, "***") if config.api_key else text


def _content(response: httpx.Response, config: GenerationConfig) -> str:
    where = f"generation server {config.endpoint}"
    try:
        payload = response.json()
    except ValueError as exc:
        raise InvalidInput(f"{where}: the answer is not JSON", field="response") from exc
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise InvalidInput(
            f"{where}: the answer has no choices[0].message.content", field="response"
        ) from exc
    if not isinstance(content, str):
        raise InvalidInput(f"{where}: choices[0].message.content is not text", field="response")
    return content


def _candidates(content: str) -> list[str]:
    """The raw proposals in a model's answer, before cleaning."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start >= 0:
        end = max(text.rfind("]"), text.rfind("}"))
        try:
            found = _from_json(json.loads(text[start : end + 1]))
        except ValueError:
            found = None
        if found:
            return found
    if text.startswith("["):  # an array cut short by max_tokens: keep its complete strings
        strings = [_unquote(s) for s in _STRING.findall(text)]
        if strings:
            return strings
    lines = [line for line in text.splitlines() if line.strip()]
    marked = [line for line in lines if _MARKER.match(line)]
    return marked or lines


def _unquote(literal: str) -> str:
    try:
        return str(json.loads(f'"{literal}"'))
    except ValueError:
        return literal


def _from_json(parsed: Any) -> list[str] | None:
    """The strings of a JSON array, or of the first array in a JSON object."""
    if isinstance(parsed, dict):
        parsed = next((v for v in parsed.values() if isinstance(v, list)), None)
    if not isinstance(parsed, list):
        return None
    out = []
    for item in parsed:
        if isinstance(item, dict):  # [{"text": ...}], as some models answer
            texts = [item.get(k) for k in ("text", "copy", "content", "variant")]
            item = next((t for t in texts if isinstance(t, str)), None)
        if isinstance(item, str):
            out.append(item)
    return out


def _clean(text: str) -> str:
    text = _MARKER.sub("", text.strip(), count=1).strip()
    for pair in _QUOTES:
        opening, closing = pair[0], pair[-1]
        if len(text) >= 2 and text[0] == opening and text[-1] == closing:
            text = text[1:-1].strip()
            break
    return " ".join(text.split())


def _proposals(content: str, examples: Sequence[str], n: int) -> list[str]:
    seen = {" ".join(e.split()).casefold() for e in examples}
    out: list[str] = []
    for candidate in _candidates(content):
        text = _clean(candidate)
        key = text.casefold()
        if not text or len(text) > MAX_PROPOSAL_CHARS or key in seen:
            continue
        seen.add(key)
        out.append(text)
        if len(out) == n:
            return out
    if not out:
        raise InvalidInput(
            "the generation server's answer holds no new proposal of at most "
            f"{MAX_PROPOSAL_CHARS} characters",
            field="response",
        )
    return out
