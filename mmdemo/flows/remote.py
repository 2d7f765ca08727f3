"""Models behind any OpenAI-compatible server: a remote VLM (vLLM, SGLang, LMDeploy serving a
base model with many LoRAs, or another mmdemo) and the arena's remote columns (GPT-4o, Gemini,
Claude through their OpenAI-compatible endpoints).

The official ``openai`` client does the talking; this module only maps mmdemo's messages,
images and decoding settings onto it and its errors onto ours. A server's URL may carry a
login (``https://user:pass@host/v1``) or a key in its query: wherever a URL is shown (labels,
errors, reprs) it goes through ``redact_url`` first.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, MMDemoError, SettingsError
from mmdemo.flows.generation import GenerationSettings
from mmdemo.redact import HIDDEN, redact_text, redact_url

NO_KEY = "none"  # what the client sends to servers that want no key (it insists on one)


class RemoteError(MMDemoError):
    """A remote model server could not be reached or refused the request."""


class MissingKeyError(RemoteError):
    """A remote column's API key is not set, so no request was sent."""


@dataclass(frozen=True)
class RemoteEndpoint:
    """One model on an OpenAI-compatible server."""

    label: str  # what the user picks and the column shows
    base_url: str  # e.g. https://api.openai.com/v1
    model: str  # the served model name ("" : the first one the server lists)
    key_env: str = ""  # environment variable holding the key ("" : no key needed)
    key: str = ""  # an explicit key (wins over key_env)
    # ask for token counts at the end of the stream (stream_options.include_usage: vLLM,
    # SGLang and mmdemo send them; not every provider accepts the option)
    usage: bool = False

    def __repr__(self) -> str:  # the key never, the URL redacted (reprs end up in logs)
        return (
            f"RemoteEndpoint(label={self.label!r}, base_url={redact_url(self.base_url)!r}, "
            f"model={self.model!r}, key_env={self.key_env!r}, key={HIDDEN if self.key else ''!r}, "
            f"usage={self.usage!r})"
        )

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key to send, NO_KEY when none is needed, None when a needed key is missing."""
        if self.key:
            return self.key
        if not self.key_env:
            return NO_KEY
        return (os.environ if environ is None else environ).get(self.key_env) or None


# Arena columns from the big providers' OpenAI-compatible endpoints.
PROVIDERS: tuple[RemoteEndpoint, ...] = (
    RemoteEndpoint("GPT-4o", "https://api.openai.com/v1", "gpt-4o", "OPENAI_API_KEY"),
    RemoteEndpoint(
        "Gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        "gemini-2.5-flash",
        "GEMINI_API_KEY",
    ),
    RemoteEndpoint(
        "Claude", "https://api.anthropic.com/v1/", "claude-sonnet-4-5", "ANTHROPIC_API_KEY"
    ),
)


def parse_remotes(spec: str) -> tuple[RemoteEndpoint, ...]:
    """``label=model@base_url[@KEY_ENV]`` entries, comma separated (Settings.arena_remotes)."""
    out = []
    for entry in (e.strip() for e in (spec or "").split(",")):
        if not entry:
            continue
        label, eq, rest = entry.partition("=")
        model, at, tail = rest.partition("@")
        url, key_env = tail, ""
        head, at_key, last = tail.rpartition("@")
        if at_key and last.replace("_", "").isalnum():  # a trailing @KEY_ENV
            url, key_env = head, last
        if not eq or not at or not label.strip() or not url.startswith(("http://", "https://")):
            raise SettingsError(
                f"arena remote {redact_text(entry)!r} is not label=model@base_url[@KEY_ENV]",
                fix="e.g. MMDEMO_ARENA_REMOTES='my-vllm=base@http://gpu-box:8000/v1'",
            )
        out.append(RemoteEndpoint(label.strip(), url.strip(), model.strip(), key_env.strip()))
    return tuple(out)


def arena_remotes(settings: Settings) -> tuple[RemoteEndpoint, ...]:
    """The providers plus the operator's own remotes (later labels replace earlier ones)."""
    table = {e.label: e for e in (*PROVIDERS, *parse_remotes(settings.arena_remotes))}
    return tuple(table.values())


def vlm_endpoint(settings: Settings) -> RemoteEndpoint:
    """The remote VLM of Settings.remote_vlm_url."""
    return RemoteEndpoint(
        "remote VLM",
        settings.remote_vlm_url,
        settings.remote_vlm_model,
        "",  # the key is optional (MMDEMO_REMOTE_VLM_KEY, read by Settings)
        settings.remote_vlm_key,
        usage=True,
    )


def data_url(image: Any) -> str:
    """A PNG data URL of a PIL image (lossless, so the server sees the very same pixels)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def openai_messages(messages: Sequence[dict[str, Any]], images: Sequence[Any]) -> list[dict]:
    """mmdemo chat-template messages (``{"type": "image"}`` placeholders, images in order) as
    OpenAI messages with the images inline as data URLs."""
    pending = list(images)
    out = []
    for m in messages:
        parts = []
        for part in m["content"]:
            if part["type"] == "image":
                parts.append({"type": "image_url", "image_url": {"url": data_url(pending.pop(0))}})
            else:
                parts.append({"type": "text", "text": part["text"]})
        if m["role"] != "user" and all(p["type"] == "text" for p in parts):
            out.append({"role": m["role"], "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": m["role"], "content": parts})
    return out


def sampling(gen: GenerationSettings) -> dict[str, Any]:
    """Decoding settings as request fields (greedy is temperature 0)."""
    if gen.greedy:
        return {"max_tokens": gen.max_new_tokens, "temperature": 0.0}
    return {"max_tokens": gen.max_new_tokens, "temperature": gen.temperature, "top_p": gen.top_p}


@dataclass
class RemoteReply:
    """The answer so far; ``done`` on the last one, with the server's token counts if sent."""

    text: str
    done: bool = False
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stopped: bool = False  # the stop switch closed the request before the server finished


class RemoteClient:
    """An OpenAI-compatible server: list its models, stream an answer."""

    def __init__(self, endpoint: RemoteEndpoint, timeout_s: float = 120.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def _openai(self) -> Any:
        key = self.endpoint.api_key()
        if key is None:
            raise MissingKeyError(
                f"{self.endpoint.key_env} is not set, so {self.endpoint.label} was not asked",
                fix=f"export {self.endpoint.key_env}=<your key> before starting mmdemo",
            )
        with self._lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(
                    base_url=self.endpoint.base_url,
                    api_key=key,
                    timeout=self.timeout_s,
                    max_retries=1,
                )
            return self._client

    def models(self) -> list[dict[str, Any]]:
        """The server's models as dicts (id first)."""
        with _errors(self.endpoint):
            return [m.model_dump() for m in self._openai().models.list()]

    def model_name(self, adapter: str | None, base_name: str = "base") -> str:
        """The served name for an adapter: itself, or for the base the endpoint's model (or
        the first model the server lists: vLLM and mmdemo list the base first)."""
        if adapter and adapter != base_name:
            return adapter
        if self.endpoint.model:
            return self.endpoint.model
        listed = self.models()
        if not listed:
            raise RemoteError(f"{redact_url(self.endpoint.base_url)} lists no models")
        return str(listed[0]["id"])

    def stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        gen: GenerationSettings,
        stop: threading.Event | None = None,
    ) -> Iterator[RemoteReply]:
        """Stream ``model``'s answer; leaving early or setting ``stop`` closes the request."""
        client = self._openai()
        stop = stop or threading.Event()
        reply = RemoteReply("")
        with _errors(self.endpoint):
            extra = {"stream_options": {"include_usage": True}} if self.endpoint.usage else {}
            response = client.chat.completions.create(
                model=model, messages=messages, stream=True, **sampling(gen), **extra
            )
            try:
                for chunk in response:
                    if chunk.usage is not None:
                        reply.prompt_tokens = chunk.usage.prompt_tokens or 0
                        reply.completion_tokens = chunk.usage.completion_tokens or 0
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            reply.text += choice.delta.content
                            yield RemoteReply(reply.text)
                        if choice.finish_reason:
                            reply.finish_reason = choice.finish_reason
                    if stop.is_set():
                        reply.finish_reason, reply.stopped = "stop", True
                        break
            finally:
                response.close()
        reply.done = True
        reply.text = reply.text.strip()
        yield reply


class _errors:
    """Turn the openai client's exceptions into RemoteError naming the server and the fix,
    with the URL redacted (the client's own texts and tracebacks may hold it as given)."""

    def __init__(self, endpoint: RemoteEndpoint) -> None:
        self.endpoint = endpoint

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        import openai

        where = f"{self.endpoint.label} ({redact_url(self.endpoint.base_url)})"
        if isinstance(exc, openai.APIConnectionError):
            raise RemoteError(
                f"{where} cannot be reached: {redact_text(str(exc))}",
                fix="check the URL and that it is running",
            ) from None  # the cause's text may hold the URL as given
        if isinstance(exc, openai.APIStatusError):
            message = redact_text(_message_of(exc))
            if exc.status_code == 404:
                raise BadInputError(f"{where} has no such model: {message}") from None
            fix = "check the API key" if exc.status_code in (401, 403) else None
            raise RemoteError(f"{where} answered {exc.status_code}: {message}", fix=fix) from None
        if isinstance(exc, openai.OpenAIError):
            raise RemoteError(f"{where} failed: {redact_text(str(exc))}") from None
        return False


def _message_of(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))
