"""lm-eval's chat-completions models with a guarded client, for every run termnorm makes.

lm-eval 0.4.13's client of ``local-chat-completions`` and ``openai-chat-completions``
(``TemplateAPI.model_call``/``amodel_call``) reads a whole response body into memory (an endless
body grew to 1.4 GB), takes a 200 without ``choices`` for an empty answer (a finished 0% run), logs
a failed body verbatim and keeps any answer whole in the samples. While ``guarded()`` is active
(``inprocess.run`` and ``inprocess.cli``: ``termnorm eval`` either way, and the study), lm-eval's
model lookup answers subclasses that

- read at most ``MAX_RESPONSE_BYTES`` of a body, for at most the request ``timeout``;
- take a response without a usable answer (a status other than 2xx, a body that is not JSON or is
  nested too deeply, no ``choices``, an empty list, a choice without text content) for a failed
  request: retried, ``max_retries`` tries in all with lm-eval's waits (1, 1, 2, 4, 8, then 10 s),
  then the run fails in one line naming the URL, the tries and the last problem;
- keep at most ``MAX_ANSWER_CHARS`` of an answer, ending in ``[termnorm: answer cut ...]`` so the
  samples say so;
- refuse to start without what they need (lm-eval's ``api`` extra, ``OPENAI_API_KEY`` for the
  OpenAI type, a ``base_url`` for the local type).

The retries happen inside the call (lm-eval's own tenacity loop is left one try): that is where
the failure reasons are known. Pinned interface (lm-eval <0.5): ``simple_evaluate`` looks models up
through ``lm_eval.api.registry.get_model``, and ``generate_until``/``get_batched_requests`` call
``model_call``/``amodel_call`` with the arguments used below; ``tests/test_api_client.py`` fails if
either moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from lm_eval.models.openai_completions import LocalChatCompletion, OpenAIChatCompletion

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import served
from termnorm_eval.harness.served import CHUNK, CapExceeded, read_capped

MAX_RESPONSE_BYTES = 8 << 20  # a chat answer of the study's 128 tokens is a few kB
MAX_ANSWER_CHARS = 4000  # kept per document: far above any ID or term name the tasks ask for
SHOWN_CHARS = 160  # of a bad body, in a message
ERROR_BYTES = 4096  # read of the body of a status other than 2xx (for the message)
NEEDED = ("aiohttp", "tenacity", "requests", "tqdm")  # lm-eval's `api` extra
INSTALL = "pip install 'termnorm-eval[api]'"
KEY_VARIABLE = "OPENAI_API_KEY"


class Unanswered(Exception):
    """One request that brought no answer; retried, then the run fails."""


def check_installed(model: str) -> None:
    """One line naming the extra to install when lm-eval's API client cannot run."""
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        raise TermnormError(f"the {model} model needs {', '.join(missing)} (lm-eval's api extra): {INSTALL}")


def cap_answer(text: str) -> str:
    """``text``, or its first ``MAX_ANSWER_CHARS`` characters and a marker saying it was cut."""
    if len(text) <= MAX_ANSWER_CHARS:
        return text
    return f"{text[:MAX_ANSWER_CHARS]} [termnorm: answer cut at {MAX_ANSWER_CHARS} of {len(text)} characters]"


def _shown(body: bytes) -> str:
    """The start of a body, on one line, quoted."""
    text = " ".join(body[: SHOWN_CHARS * 4].decode("utf-8", "replace").split())
    cut = len(text) > SHOWN_CHARS or len(body) > SHOWN_CHARS * 4
    return repr(text[:SHOWN_CHARS] + ("..." if cut else ""))


async def aread_capped(content: Any) -> bytes:
    """``served.read_capped`` for an aiohttp ``StreamReader`` (the session's timeout bounds the time)."""
    buf = bytearray()
    async for chunk in _chunks(content):
        buf += chunk
        if len(buf) > MAX_RESPONSE_BYTES:
            raise served.over_cap(MAX_RESPONSE_BYTES)
    return bytes(buf)


async def _chunks(content: Any) -> AsyncIterator[bytes]:
    while chunk := await content.read(CHUNK):
        yield chunk


def answer_of(status: int, content_type: str, body: bytes) -> dict[str, Any]:
    """The parsed response when it carries an answer in every choice; else ``Unanswered``."""
    if not 200 <= status < 300:
        raise Unanswered(f"HTTP {status}" + (f": {_shown(body)}" if body.strip() else ""))
    try:
        data = json.loads(body)
    except RecursionError:
        raise Unanswered(f"HTTP {status} with JSON nested too deeply") from None
    except ValueError:  # also UnicodeDecodeError
        kind = content_type.split(";")[0].strip() or "no content type"
        raise Unanswered(f"HTTP {status} with a body that is not JSON ({kind}: {_shown(body)})") from None
    if not isinstance(data, dict):
        raise Unanswered(f"HTTP {status} with JSON that is not an object")
    choices = data.get("choices")
    if choices is None:
        error = data.get("error")
        detail = f" (error: {_shown(json.dumps(error).encode())})" if error else ""
        raise Unanswered(f"HTTP {status} without choices in the response{detail}")
    if not isinstance(choices, list) or not choices:
        raise Unanswered(f"HTTP {status} with no choices in the response (an empty list)")
    for i, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            what = "no message content" if content is None else "message content that is not text"
            raise Unanswered(f"HTTP {status} with {what} in choice {i}")
        if choice.setdefault("index", i) not in range(len(choices)):  # lm-eval places answers by it
            raise Unanswered(f"HTTP {status} with choice index {choice['index']!r} out of range")
    return data


def reason(e: BaseException, timeout: float) -> str:
    """What went wrong with one request, in a few words."""
    if isinstance(e, (Unanswered, CapExceeded)):
        return str(e)
    if isinstance(e, asyncio.TimeoutError) or "Timeout" in type(e).__name__:
        return f"no answer within {timeout:g} s"
    text = " ".join(str(e).split())
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    return f"{type(e).__name__}: {errno.group(1) if errno else text[:SHOWN_CHARS]}"


def wait_s(attempt: int) -> float:
    """lm-eval's wait before try ``attempt + 1`` (tenacity ``wait_exponential(0.5, min=1, max=10)``)."""
    return float(min(max(0.5 * 2 ** (attempt - 1), 1.0), 10.0))


class _Guarded:
    """The guarded calls, mixed in before lm-eval's chat-completions class."""

    # What the calls use of lm-eval's TemplateAPI (annotations only: nothing here overrides it).
    base_url: str
    header: dict[str, str]
    eos_string: str | None
    cache_hook: Any
    max_retries: int
    timeout: int
    verify_certificate: bool
    _seed: int
    _create_payload: Any
    create_message: Any
    parse_logprobs: Any

    MODEL = ""  # lm-eval's name of the class this one guards

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        model = self.MODEL
        check_installed(model)
        self._check_key()
        super().__init__(*args, **kwargs)
        if not self.base_url:
            raise TermnormError(f"the {model} model needs base_url=http://HOST:PORT/v1/chat/completions in "
                                "its model arguments")
        self._tries = max(int(self.max_retries), 1)
        self.max_retries = 1  # lm-eval's own retry loop: one call, which retries inside
        self._in_flight: set[asyncio.Task[Any]] = set()

    def _check_key(self) -> None:
        """Refuse to start without the API key the model reads (none for a local server)."""

    def _failed(self, attempt: int, e: BaseException) -> float:
        """The wait before the next try, or the run's one-line error after the last."""
        why = reason(e, self.timeout)
        if attempt >= self._tries:
            tries = f"{self._tries} {'try' if self._tries == 1 else 'tries'}"
            raise TermnormError(f"the API model at {self.base_url} did not answer after {tries}: {why}")
        wait = wait_s(attempt)
        print(f"termnorm: {self.base_url}: {why}; retrying in {wait:g} s "
              f"(try {attempt + 1} of {self._tries})", file=sys.stderr, flush=True)
        return wait

    def _payload(self, messages: Any, generate: bool, gen_kwargs: dict[str, Any] | None,
                 **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = self._create_payload(self.create_message(messages), generate=generate,
                                                       gen_kwargs=copy.deepcopy(gen_kwargs), seed=self._seed,
                                                       **kwargs)
        return payload

    def model_call(self, messages: Any, *, generate: bool = True, gen_kwargs: dict[str, Any] | None = None,
                   **kwargs: Any) -> dict[str, Any]:
        import requests

        payload = self._payload(messages, generate, gen_kwargs, eos=self.eos_string, **kwargs)
        attempt = 0
        while True:
            attempt += 1
            try:
                with requests.post(self.base_url, json=payload, headers=self.header,
                                   verify=self.verify_certificate, timeout=self.timeout, stream=True) as r:
                    body = read_capped(r.iter_content(CHUNK), MAX_RESPONSE_BYTES, self.timeout) if r.ok \
                        else next(r.iter_content(ERROR_BYTES), b"")
                    return answer_of(r.status_code, r.headers.get("Content-Type", ""), body)
            except (Unanswered, CapExceeded, requests.RequestException, OSError) as e:
                time.sleep(self._failed(attempt, e))

    async def amodel_call(self, session: Any, sem: asyncio.Semaphore, messages: Any, *, generate: bool = True,
                          cache_keys: list[Any] | None = None, ctxlens: list[int] | None = None,
                          gen_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        import aiohttp

        payload = self._payload(messages, generate, gen_kwargs, **kwargs)
        task = asyncio.current_task()
        assert task is not None  # lm-eval runs each request as a task
        self._in_flight.add(task)
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    async with sem, session.post(self.base_url, json=payload, headers=self.header) as r:
                        body = await aread_capped(r.content) if r.ok else await r.content.read(ERROR_BYTES)
                        outputs = answer_of(r.status, r.headers.get("Content-Type", ""), body)
                    break
                except (Unanswered, CapExceeded, aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                    await asyncio.sleep(self._failed(attempt, e))
        except TermnormError:
            # The run fails: stop the other requests now, before lm-eval closes their session.
            for other in self._in_flight - {task}:
                other.cancel()
            raise
        finally:
            self._in_flight.discard(task)
        answers: list[Any] = (
            self.parse_generations(outputs=outputs) if generate
            else self.parse_logprobs(outputs=outputs, tokens=messages, ctxlens=ctxlens))
        for answer, key in zip(answers, cache_keys or [], strict=False):
            self.cache_hook.add_partial("generate_until" if generate else "loglikelihood", key, answer)
        return answers

    def parse_generations(self, outputs: Any, **kwargs: Any) -> list[Any]:
        parsed: list[Any] = super().parse_generations(outputs, **kwargs)  # type: ignore[misc]
        return [cap_answer(a) if isinstance(a, str) else a for a in parsed]


class GuardedLocalChat(_Guarded, LocalChatCompletion):
    MODEL = "local-chat-completions"


class GuardedOpenAIChat(_Guarded, OpenAIChatCompletion):
    MODEL = "openai-chat-completions"

    def _check_key(self) -> None:
        if not os.environ.get(KEY_VARIABLE):
            raise TermnormError(f"the {self.MODEL} model reads the API key from the environment variable "
                                f"{KEY_VARIABLE}, which is not set (or empty)")


GUARDED: dict[str, type] = {c.MODEL: c for c in (GuardedLocalChat, GuardedOpenAIChat)}


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """lm-eval's model lookup answers the guarded classes for their names while the block runs."""
    import lm_eval.api.registry as registry

    original = registry.get_model

    def get_model(model_name: str) -> Any:
        return GUARDED.get(model_name) or original(model_name)

    registry.get_model = get_model
    try:
        yield
    finally:
        registry.get_model = original
