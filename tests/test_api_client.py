"""The guarded chat-completions client (harness/api_client.py) against a hostile server on 127.0.0.1,
through lm-eval's own request loops (``generate_until``: sync with num_concurrent=1, async above),
and the lm-eval interface it relies on, pinned (issue 20)."""

from __future__ import annotations

import inspect
import json

import hostile_api
import pytest

pytest.importorskip("tenacity", reason="the api extra is not installed: pip install '.[api]'")
pytest.importorskip("aiohttp", reason="the api extra is not installed: pip install '.[api]'")

from lm_eval.api.instance import Instance
from lm_eval.models.api_models import JsonChatStr, TemplateAPI

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import api_client


@pytest.fixture(autouse=True)
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-eval's waits between tries (1 s and up) are not what these tests are about."""
    monkeypatch.setattr(api_client, "wait_s", lambda attempt: 0.0)


CHAT = JsonChatStr(json.dumps([{"role": "user", "content": "GO ID of 'mitochondrion'?"}]))


def _lm(url: str, tries: int = 2, concurrent: int = 1) -> api_client.GuardedLocalChat:
    return api_client.GuardedLocalChat(model="m", base_url=url, max_retries=tries, num_concurrent=concurrent,
                                       tokenizer_backend=None)


def _generate(lm: api_client.GuardedLocalChat, n: int = 1) -> list[str]:
    requests = [Instance("generate_until", {}, (CHAT, {"until": ["\n"], "max_gen_toks": 16}), i)
                for i in range(n)]
    return list(lm.generate_until(requests, disable_tqdm=True))


# What each bad reply is called in the one-line error.
BAD = {
    "no-choices": "HTTP 200 without choices in the response",
    "empty-choices": "HTTP 200 with no choices in the response (an empty list)",
    "no-content": "HTTP 200 with no message content in choice 0",
    "500": "HTTP 500: 'Internal Server Error: the model crashed'",
    "429": "HTTP 429: '{\"error\": {\"message\": \"Rate limit reached\"",
    "html": "HTTP 200 with a body that is not JSON (text/html: '<html><body><h1>Welcome to nginx!",
    "malformed": "HTTP 200 with a body that is not JSON (application/json: '{\"choices\": [{\"index\": 0,",
    "deep": "HTTP 200 with JSON nested too deeply",
    "endless": "a response body over 8 MiB (stopped reading there)",
}


@pytest.mark.parametrize("concurrent", [1, 2])
@pytest.mark.parametrize("reply", sorted(BAD))
def test_a_response_without_an_answer_fails_after_the_tries_in_one_line(reply: str, concurrent: int) -> None:
    with hostile_api.serve(default=reply) as server:
        with pytest.raises(TermnormError) as e:
            _generate(_lm(server.url, tries=2, concurrent=concurrent))
        assert server.requests == 2  # lm-eval's own loop left one call: ours made the 2 tries
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"the API model at {server.url} did not answer after 2 tries: {BAD[reply]}")


@pytest.mark.parametrize("concurrent", [1, 2])
def test_an_endless_body_is_read_no_further_than_the_cap(concurrent: int) -> None:
    with hostile_api.serve(default="endless") as server, pytest.raises(TermnormError, match="over 8 MiB"):
        _generate(_lm(server.url, tries=1, concurrent=concurrent))
    [sent] = server.sent
    # What the server got into its socket: the cap, plus what the kernel buffers on loopback.
    assert api_client.MAX_RESPONSE_BYTES < sent < api_client.MAX_RESPONSE_BYTES + (32 << 20)


@pytest.mark.parametrize("concurrent", [1, 2])
def test_the_answer_is_kept_when_the_server_recovers_within_the_tries(concurrent: int) -> None:
    with hostile_api.serve("500", "no-choices", default="answer:GO:0005739") as server:
        assert _generate(_lm(server.url, tries=3, concurrent=concurrent)) == ["GO:0005739"]
        assert server.requests == 3


@pytest.mark.parametrize("concurrent", [1, 2])
def test_an_overlong_answer_is_cut_with_a_marker(concurrent: int) -> None:
    n = 5 * api_client.MAX_ANSWER_CHARS
    with hostile_api.serve(default=f"big:{n}") as server:
        [answer] = _generate(_lm(server.url, concurrent=concurrent))
    cap = api_client.MAX_ANSWER_CHARS
    assert answer == "A" * cap + f" [termnorm: answer cut at {cap} of {n} characters]"


def test_one_failed_request_stops_the_others() -> None:
    with hostile_api.serve("no-choices", default="answer:GO:0005739") as server:
        with pytest.raises(TermnormError, match="after 1 try: HTTP 200 without choices"):
            _generate(_lm(server.url, tries=1, concurrent=2), n=6)
        assert server.requests < 6


def test_missing_api_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = api_client.importlib.util.find_spec
    monkeypatch.setattr(api_client.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tenacity" else find_spec(name, *a))
    with pytest.raises(TermnormError, match=r"needs tenacity \(lm-eval's api extra\): "
                                            r"pip install 'termnorm-eval\[api\]'"):
        _lm("http://127.0.0.1:9/v1/chat/completions")


@pytest.mark.parametrize("key", [None, ""])
def test_the_openai_type_without_its_key_names_the_variable(key: str | None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if key is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    with pytest.raises(TermnormError, match="environment variable OPENAI_API_KEY, which is not set"):
        api_client.GuardedOpenAIChat(model="gpt-4o")


def test_the_local_type_without_base_url_says_so() -> None:
    with pytest.raises(TermnormError, match="needs base_url="):
        api_client.GuardedLocalChat(model="m", tokenizer_backend=None)


def test_the_lm_eval_interface_the_guard_relies_on() -> None:
    """Fails loudly when lm-eval moves what api_client overrides or patches (pinned <0.5)."""
    import lm_eval.api.registry as registry
    import lm_eval.evaluator
    from lm_eval.models.openai_completions import LocalChatCompletion, OpenAIChatCompletion

    # simple_evaluate finds its model class through this module attribute, which guarded() swaps.
    assert "lm_eval.api.registry.get_model(model)" in inspect.getsource(lm_eval.evaluator.simple_evaluate)
    with api_client.guarded():
        assert registry.get_model("local-chat-completions") is api_client.GuardedLocalChat
        assert registry.get_model("openai-chat-completions") is api_client.GuardedOpenAIChat
        assert registry.get_model("dummy").__name__ == "DummyLM"
    assert registry.get_model("local-chat-completions") is LocalChatCompletion
    assert registry.get_model("openai-chat-completions") is OpenAIChatCompletion
    # The calls lm-eval's loops make, with the arguments the overrides take.
    assert list(inspect.signature(TemplateAPI.model_call).parameters) == [
        "self", "messages", "generate", "gen_kwargs", "kwargs"]
    assert list(inspect.signature(TemplateAPI.amodel_call).parameters) == [
        "self", "session", "sem", "messages", "generate", "cache_keys", "ctxlens", "gen_kwargs", "kwargs"]
    assert "(self.model_call)" in inspect.getsource(TemplateAPI.generate_until)
    assert "(self.amodel_call)" in inspect.getsource(TemplateAPI.get_batched_requests)
    assert "stop_after_attempt(self.max_retries)" in inspect.getsource(TemplateAPI.generate_until)
    for name in ("_create_payload", "create_message", "parse_generations", "header", "eos_string"):
        assert hasattr(LocalChatCompletion, name), name
