"""``ratewise.wrap_openai``: the OpenAI SDK's ``chat.completions.create`` and
``embeddings.create``, routed, paced and settled by a ratewise engine.

>>> import openai, ratewise
>>> engine = ratewise.Engine({
...     "providers": [
...         {"name": "gpt-east", "model": "gpt-4o-mini",
...          "quotas": [{"dimension": "requests", "limit": 500},
...                     {"dimension": "tokens", "limit": 200000}]},
...         {"name": "gpt-west", "model": "gpt-4o-mini",
...          "quotas": [{"dimension": "requests", "limit": 500},
...                     {"dimension": "tokens", "limit": 200000}]},
...     ],
...     "capabilities": [{"name": "chat", "providers": [
...         {"provider": "gpt-east", "priority": 10}, {"provider": "gpt-west", "priority": 5}]}],
... })
>>> client = ratewise.wrap_openai(openai.OpenAI(api_key="sk-test"), engine)
>>> def ask(question: str) -> str:
...     completion = client.chat.completions.create(
...         model="chat",  # a ratewise capability; the provider's "model" is what is sent
...         messages=[{"role": "user", "content": question}],
...         max_completion_tokens=200,
...     )
...     return completion.choices[0].message.content or ""

What one call does:

1. The input is estimated with ``ratewise.estimate_tokens`` (the messages, plus ``tools``,
   ``functions`` and ``response_format`` when given), the output is ``max_completion_tokens``
   or ``max_tokens`` (times ``n``), else ``default_output_tokens``.
2. A permit is acquired for the capability (``model=``, or ``capability=`` given to the
   wrapper, which then overrides ``model=``) in the wrapper's lane, waiting in the lane's queue
   at most until the call's deadline (``timeout_ms`` from the call's start).
3. The request is sent with ``model=permit.model`` on ``client.with_options(max_retries=0)``:
   the SDK's own retries are off, because they would sleep on a 429's retry-after while holding
   the permit and retry the same deployment behind ratewise's back.
4. A response settles the permit with the reported usage (``prompt_tokens``,
   ``completion_tokens``, ``prompt_tokens_details.cached_tokens``), the response headers (so the
   engine learns the provider's real limits) and the latency.
5. A 429, 529, 503, other 5xx, 408/504 or a timeout settles with that status and the response
   headers (their retry-after holds the deployment) and is tried again, while attempts
   (``max_attempts``) and time remain: the engine picks another deployment, or waits out the
   hold. Other 4xx (400, 401, 403, 404, 422, a 429 ``insufficient_quota``) settle as they say
   and raise the SDK's exception unchanged: such a request is sent once. After the last
   attempt the last SDK exception is raised; when the engine refuses (nothing can take the
   call before the deadline) ``ratewise.NoAvailableProviderError`` is raised, chained
   (``__cause__``) to the last SDK exception, if any.
6. Connection failures: one before anything was sent (``ConnectError``) refunds the permit and
   tries again; one after the request may have reached the provider (a reset, an incomplete
   read) settles ``interrupted`` (the estimates stay charged: ratewise never refunds what a
   provider may have charged) and tries again.

Streaming (``stream=True``) returns a :class:`ChatCompletionStream`: an iterator of the SDK's
own ``ChatCompletionChunk`` objects, also a context manager with ``close()``. Unless the caller
asked for ``stream_options={"include_usage": True}`` (then the usage chunk is theirs), the
wrapper asks for it and hides that final usage-only chunk. The call returns once the first
chunk has arrived, so a failure before it (a 529, a connection reset) may still be retried; a
retry never happens after a chunk has reached the caller. Reading to the end settles a
success with the reported usage; an exception while reading settles ``interrupted`` with the
usage seen (the estimates stand for what was not reported) and re-raises the SDK's exception;
a stream closed early, or dropped without being finished, settles ``interrupted``. The latency
recorded for a stream is the time to its first chunk.

Counters: a call first asks for a permit without waiting (cheaper than queueing, and it never
jumps the queue: a non-waiting acquire yields to higher-ranked waiters) and waits in its lane
only when that is refused. A call that had to wait therefore shows in the snapshot's counters
as two ``acquires`` and one ``refusal``; ``grants`` and the mock-side figures count it once.

Headers: only those the engine reads cross into it (``x-ratelimit-*``, ``anthropic-ratelimit-*``,
``retry-after``, ``retry-after-ms`` and ``date``, as ``ratewise`` reads them from httpx's raw
header list in the same native call that settles the permit).

The SDK is an optional dependency (``pip install ratewise[openai]``): this module imports it
only when a client is wrapped.
"""

from __future__ import annotations

# The client's type is checked at run time for callers that do not type-check.
# pyright: reportUnnecessaryIsInstance=false

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterable, List, Literal, Optional, Union, cast, overload

from ._native import Engine, Permit
from ._wrap import (
    Policy,
    as_list,
    complete_usage,
    elapsed_ms,
    estimate,
    int_or_none,
    run,
    run_async,
    settle,
    untyped,
)

if TYPE_CHECKING:
    import httpx2
    from typing_extensions import Self  # typing.Self needs 3.11; only the checkers read it
    from openai import AsyncOpenAI, OpenAI
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

__all__ = [
    "wrap_openai",
    "RatewiseOpenAI",
    "AsyncRatewiseOpenAI",
    "ChatCompletionStream",
    "AsyncChatCompletionStream",
]

_BODY_FIELDS = ("tools", "functions", "response_format")


def _chat_estimate(policy: Policy, kwargs: "dict[str, Any]") -> "tuple[int, int]":
    given: Any = kwargs.get("messages")
    if given is None:
        raise TypeError("chat.completions.create() needs messages=")
    messages: Any = as_list(given)  # a one-shot iterable is read twice: estimate and send
    if messages is not given:
        kwargs["messages"] = messages
    body: Any = messages
    for field in _BODY_FIELDS:
        if field in kwargs:
            if body is messages:
                body = {"messages": messages}
            value: Any = kwargs[field]
            if field != "response_format":
                value = as_list(value)
                kwargs[field] = value
            body[field] = value
    input_tokens = estimate(body)
    out: Any = kwargs.get("max_completion_tokens")
    if out is None:
        out = kwargs.get("max_tokens")
    if type(out) is not int or out < 0:
        out = policy.default_output_tokens
    n: Any = kwargs.get("n")
    if type(n) is int and n > 1:
        out *= n
    return input_tokens, out


def _embedding_estimate(kwargs: "dict[str, Any]") -> int:
    given: Any = kwargs.get("input")
    if given is None:
        raise TypeError("embeddings.create() needs input=")
    value: Any = as_list(given)
    if value is not given:
        kwargs["input"] = value
    if isinstance(value, list) and value:
        items: "list[Any]" = untyped(value)
        first: Any = items[0]
        if isinstance(first, int):
            return len(items)  # token ids: exact
        if isinstance(first, list) and all(isinstance(v, list) for v in items):
            return sum(len(cast("list[Any]", v)) for v in items)
    return estimate(value)


def _include_usage(kwargs: "dict[str, Any]") -> bool:
    """Ask for the final usage chunk; True when it is ours to hide (the caller did not ask)."""
    options: Any = kwargs.get("stream_options")
    given: "dict[str, Any]" = dict(cast("Mapping[str, Any]", options)) if isinstance(options, Mapping) else {}
    if given.get("include_usage") is True:
        return False
    merged = given
    merged["include_usage"] = True
    kwargs["stream_options"] = merged
    return True


def _settle_chat(permit: Permit, status: str, latency_ms: int, headers: Any, usage: Any) -> None:
    if usage is None:
        complete_usage(permit, status, latency_ms, headers, None, None, None)
        return
    details = usage.prompt_tokens_details
    # The SDK's models hold ints (or None); the engine refuses anything else, and
    # complete_usage then settles on the estimates.
    complete_usage(
        permit,
        status,
        latency_ms,
        headers,
        usage.prompt_tokens,
        usage.completion_tokens,
        details.cached_tokens if details is not None else None,
    )


def _finish_json(permit: Permit, raw: Any, t0: float, embedding: bool) -> Any:
    headers = raw.headers
    try:
        parsed = raw.parse()
    except BaseException:
        settle(permit, "interrupted", headers, t0)  # it answered; the body did not parse
        raise
    latency = elapsed_ms(t0)
    usage = getattr(parsed, "usage", None)
    if embedding:
        tokens = int_or_none(getattr(usage, "prompt_tokens", None)) if usage is not None else None
        complete_usage(permit, "success", latency, headers, tokens, 0 if tokens is not None else None, None)
    else:
        _settle_chat(permit, "success", latency, headers, usage)
    return parsed


class _Opening:
    """Whether the attempt in progress had its 200 (errors after it are errors of the body)."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False

    def __call__(self) -> bool:
        return self.seen


_END: Any = object()


class _StreamBase:
    __slots__ = ("_stream", "_permit", "_latency_ms", "_headers", "_hide", "_pending", "_usage", "_open")

    def __init__(self, stream: Any, permit: Permit, latency_ms: int, first: Any, hide: bool) -> None:
        self._stream = stream
        self._permit = permit
        self._latency_ms = latency_ms
        response = getattr(stream, "response", None)
        self._headers = getattr(response, "headers", None)
        self._hide = hide
        self._pending = first
        self._usage: Any = None
        self._open = True

    @property
    def response(self) -> "httpx2.Response":
        """The HTTP response of the stream (its headers, status, request id)."""
        return self._stream.response  # type: ignore[no-any-return]

    @property
    def permit(self) -> Permit:
        """The permit this stream is settled on."""
        return self._permit

    def _finish(self, status: str) -> None:
        if self._open:
            self._open = False
            _settle_chat(self._permit, status, self._latency_ms, self._headers, self._usage)

    def __del__(self) -> None:
        # Dropped without being finished or closed: the consumer gave up mid-stream.
        try:
            if self._open:
                self._finish("interrupted")
        except Exception:
            pass


class ChatCompletionStream(_StreamBase):
    """The chunks of a streamed chat completion (the SDK's ``ChatCompletionChunk``).

    Iterate it, or use it as a context manager; ``close()`` stops reading and settles the
    permit ``interrupted`` if the stream was not finished.
    """

    __slots__ = ()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> "ChatCompletionChunk":
        while True:
            chunk = self._pending
            if chunk is not None:
                self._pending = None
                if chunk is _END:
                    self._finish("success")
                    raise StopIteration
            else:
                if not self._open:
                    raise StopIteration
                try:
                    chunk = self._stream.__next__()
                except StopIteration:
                    self._finish("success")
                    raise
                except BaseException:
                    self._finish("interrupted")
                    raise
            usage = chunk.usage
            if usage is not None:
                self._usage = usage
                if self._hide and not chunk.choices:
                    continue  # the usage chunk the wrapper asked for
            return chunk  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop reading: release the connection; an unfinished stream settles ``interrupted``."""
        self._finish("interrupted")
        self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()


class AsyncChatCompletionStream(_StreamBase):
    """The chunks of a streamed chat completion, for ``AsyncOpenAI`` (``async for``)."""

    __slots__ = ()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> "ChatCompletionChunk":
        while True:
            chunk = self._pending
            if chunk is not None:
                self._pending = None
                if chunk is _END:
                    self._finish("success")
                    raise StopAsyncIteration
            else:
                if not self._open:
                    raise StopAsyncIteration
                try:
                    chunk = await self._stream.__anext__()
                except StopAsyncIteration:
                    self._finish("success")
                    raise
                except BaseException:
                    self._finish("interrupted")
                    raise
            usage = chunk.usage
            if usage is not None:
                self._usage = usage
                if self._hide and not chunk.choices:
                    continue
            return chunk  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Stop reading: release the connection; an unfinished stream settles ``interrupted``."""
        self._finish("interrupted")
        await self._stream.close()

    async def aclose(self) -> None:
        """Alias of ``close()``."""
        await self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.close()


class ChatCompletions:
    """``chat.completions`` of a wrapped ``OpenAI`` client."""

    __slots__ = ("_policy", "_raw_create", "_create")

    def __init__(self, policy: Policy, client: Any) -> None:
        self._policy = policy
        self._raw_create = client.chat.completions.with_raw_response.create
        self._create = client.chat.completions.create

    @overload
    def create(
        self,
        *,
        messages: "Iterable[ChatCompletionMessageParam]",
        model: Optional[str] = ...,
        stream: Optional[Literal[False]] = ...,
        **kwargs: Any,
    ) -> "ChatCompletion": ...
    @overload
    def create(
        self,
        *,
        messages: "Iterable[ChatCompletionMessageParam]",
        model: Optional[str] = ...,
        stream: Literal[True],
        **kwargs: Any,
    ) -> ChatCompletionStream: ...
    def create(self, **kwargs: Any) -> "Union[ChatCompletion, ChatCompletionStream]":
        """``client.chat.completions.create(...)``, through the engine; ``model=`` names the
        capability. Takes every argument the SDK takes."""
        policy = self._policy
        capability = policy.capability_for(kwargs.get("model"), "chat.completions.create")
        input_tokens, output_tokens = _chat_estimate(policy, kwargs)
        if kwargs.get("stream") is True:
            return self._stream(capability, input_tokens, output_tokens, kwargs)
        raw_create = self._raw_create

        def send(permit: Permit) -> Any:
            kwargs["model"] = permit.model
            return raw_create(**kwargs)

        permit, raw, t0 = run(policy, capability, input_tokens, output_tokens, send)
        return _finish_json(permit, raw, t0, False)  # type: ignore[no-any-return]

    def _stream(
        self, capability: str, input_tokens: int, output_tokens: int, kwargs: "dict[str, Any]"
    ) -> ChatCompletionStream:
        hide = _include_usage(kwargs)
        create = self._create
        opening = _Opening()

        def send(permit: Permit) -> "tuple[Any, Any]":
            opening.seen = False
            kwargs["model"] = permit.model
            stream = create(**kwargs)
            opening.seen = True
            try:
                first = stream.__next__()
            except StopIteration:
                first = _END
            except BaseException:
                stream.close()
                raise
            return stream, first

        permit, (stream, first), t0 = run(self._policy, capability, input_tokens, output_tokens, send, opening)
        return ChatCompletionStream(stream, permit, elapsed_ms(t0), first, hide)


class AsyncChatCompletions:
    """``chat.completions`` of a wrapped ``AsyncOpenAI`` client."""

    __slots__ = ("_policy", "_raw_create", "_create")

    def __init__(self, policy: Policy, client: Any) -> None:
        self._policy = policy
        self._raw_create = client.chat.completions.with_raw_response.create
        self._create = client.chat.completions.create

    @overload
    async def create(
        self,
        *,
        messages: "Iterable[ChatCompletionMessageParam]",
        model: Optional[str] = ...,
        stream: Optional[Literal[False]] = ...,
        **kwargs: Any,
    ) -> "ChatCompletion": ...
    @overload
    async def create(
        self,
        *,
        messages: "Iterable[ChatCompletionMessageParam]",
        model: Optional[str] = ...,
        stream: Literal[True],
        **kwargs: Any,
    ) -> AsyncChatCompletionStream: ...
    async def create(self, **kwargs: Any) -> "Union[ChatCompletion, AsyncChatCompletionStream]":
        """``await client.chat.completions.create(...)``, through the engine (waiting for a
        permit never blocks the event loop)."""
        policy = self._policy
        capability = policy.capability_for(kwargs.get("model"), "chat.completions.create")
        input_tokens, output_tokens = _chat_estimate(policy, kwargs)
        if kwargs.get("stream") is True:
            return await self._stream(capability, input_tokens, output_tokens, kwargs)
        raw_create = self._raw_create

        async def send(permit: Permit) -> Any:
            kwargs["model"] = permit.model
            return await raw_create(**kwargs)

        permit, raw, t0 = await run_async(policy, capability, input_tokens, output_tokens, send)
        return _finish_json(permit, raw, t0, False)  # type: ignore[no-any-return]

    async def _stream(
        self, capability: str, input_tokens: int, output_tokens: int, kwargs: "dict[str, Any]"
    ) -> AsyncChatCompletionStream:
        hide = _include_usage(kwargs)
        create = self._create
        opening = _Opening()

        async def send(permit: Permit) -> "tuple[Any, Any]":
            opening.seen = False
            kwargs["model"] = permit.model
            stream = await create(**kwargs)
            opening.seen = True
            try:
                first = await stream.__anext__()
            except StopAsyncIteration:
                first = _END
            except BaseException:
                await stream.close()
                raise
            return stream, first

        permit, (stream, first), t0 = await run_async(
            self._policy, capability, input_tokens, output_tokens, send, opening
        )
        return AsyncChatCompletionStream(stream, permit, elapsed_ms(t0), first, hide)


class Embeddings:
    """``embeddings`` of a wrapped ``OpenAI`` client."""

    __slots__ = ("_policy", "_raw_create")

    def __init__(self, policy: Policy, client: Any) -> None:
        self._policy = policy
        self._raw_create = client.embeddings.with_raw_response.create

    def create(
        self,
        *,
        input: "Union[str, List[str], Iterable[int], Iterable[Iterable[int]]]",
        model: Optional[str] = None,
        **kwargs: Any,
    ) -> "CreateEmbeddingResponse":
        """``client.embeddings.create(...)``, through the engine (no output tokens)."""
        policy = self._policy
        capability = policy.capability_for(model, "embeddings.create")
        kwargs["input"] = input
        input_tokens = _embedding_estimate(kwargs)
        raw_create = self._raw_create

        def send(permit: Permit) -> Any:
            kwargs["model"] = permit.model
            return raw_create(**kwargs)

        permit, raw, t0 = run(policy, capability, input_tokens, 0, send)
        return _finish_json(permit, raw, t0, True)  # type: ignore[no-any-return]


class AsyncEmbeddings:
    """``embeddings`` of a wrapped ``AsyncOpenAI`` client."""

    __slots__ = ("_policy", "_raw_create")

    def __init__(self, policy: Policy, client: Any) -> None:
        self._policy = policy
        self._raw_create = client.embeddings.with_raw_response.create

    async def create(
        self,
        *,
        input: "Union[str, List[str], Iterable[int], Iterable[Iterable[int]]]",
        model: Optional[str] = None,
        **kwargs: Any,
    ) -> "CreateEmbeddingResponse":
        """``await client.embeddings.create(...)``, through the engine (no output tokens)."""
        policy = self._policy
        capability = policy.capability_for(model, "embeddings.create")
        kwargs["input"] = input
        input_tokens = _embedding_estimate(kwargs)
        raw_create = self._raw_create

        async def send(permit: Permit) -> Any:
            kwargs["model"] = permit.model
            return await raw_create(**kwargs)

        permit, raw, t0 = await run_async(policy, capability, input_tokens, 0, send)
        return _finish_json(permit, raw, t0, True)  # type: ignore[no-any-return]


class Chat:
    """``chat`` of a wrapped ``OpenAI`` client."""

    __slots__ = ("completions",)

    def __init__(self, completions: ChatCompletions) -> None:
        self.completions = completions


class AsyncChat:
    """``chat`` of a wrapped ``AsyncOpenAI`` client."""

    __slots__ = ("completions",)

    def __init__(self, completions: AsyncChatCompletions) -> None:
        self.completions = completions


class RatewiseOpenAI:
    """An ``openai.OpenAI`` client whose ``chat.completions.create`` and ``embeddings.create``
    go through a ratewise engine (see the module's documentation). ``client`` is the client
    as given; anything else is called on it directly, without ratewise."""

    __slots__ = ("client", "engine", "chat", "embeddings", "_policy")

    def __init__(self, client: "OpenAI", policy: Policy) -> None:
        self.client = client
        self.engine: Engine = policy.engine
        self._policy = policy
        bare = client.with_options(max_retries=0)
        self.chat = Chat(ChatCompletions(policy, bare))
        self.embeddings = Embeddings(policy, bare)

    def with_options(self, **options: Any) -> "RatewiseOpenAI":
        """The same wrapper over ``client.with_options(**options)`` (its retries stay off)."""
        return RatewiseOpenAI(self.client.with_options(**options), self._policy)

    def __repr__(self) -> str:
        return f"RatewiseOpenAI(capability={self._policy.capability!r}, lane={self._policy.lane!r})"


class AsyncRatewiseOpenAI:
    """An ``openai.AsyncOpenAI`` client whose ``chat.completions.create`` and
    ``embeddings.create`` go through a ratewise engine (see the module's documentation)."""

    __slots__ = ("client", "engine", "chat", "embeddings", "_policy")

    def __init__(self, client: "AsyncOpenAI", policy: Policy) -> None:
        self.client = client
        self.engine: Engine = policy.engine
        self._policy = policy
        bare = client.with_options(max_retries=0)
        self.chat = AsyncChat(AsyncChatCompletions(policy, bare))
        self.embeddings = AsyncEmbeddings(policy, bare)

    def with_options(self, **options: Any) -> "AsyncRatewiseOpenAI":
        """The same wrapper over ``client.with_options(**options)`` (its retries stay off)."""
        return AsyncRatewiseOpenAI(self.client.with_options(**options), self._policy)

    def __repr__(self) -> str:
        return f"AsyncRatewiseOpenAI(capability={self._policy.capability!r}, lane={self._policy.lane!r})"


@overload
def wrap_openai(
    client: "AsyncOpenAI",
    engine: Engine,
    *,
    capability: Optional[str] = None,
    lane: Optional[str] = None,
    timeout_ms: int = 30_000,
    max_attempts: int = 3,
    default_output_tokens: int = 1024,
) -> AsyncRatewiseOpenAI: ...
@overload
def wrap_openai(
    client: "OpenAI",
    engine: Engine,
    *,
    capability: Optional[str] = None,
    lane: Optional[str] = None,
    timeout_ms: int = 30_000,
    max_attempts: int = 3,
    default_output_tokens: int = 1024,
) -> RatewiseOpenAI: ...
def wrap_openai(
    client: "Union[OpenAI, AsyncOpenAI]",
    engine: Engine,
    *,
    capability: Optional[str] = None,
    lane: Optional[str] = None,
    timeout_ms: int = 30_000,
    max_attempts: int = 3,
    default_output_tokens: int = 1024,
) -> "Union[RatewiseOpenAI, AsyncRatewiseOpenAI]":
    """Wrap an ``openai.OpenAI`` (sync) or ``openai.AsyncOpenAI`` (async) client.

    - ``capability``: the capability every call uses (then ``model=`` is ignored); by default
      each call's ``model=`` names its capability.
    - ``lane``: the lane of every call (default ``normal``).
    - ``timeout_ms``: how long one call may take to get a permit, including every retry's wait
      (the requests themselves are bounded by the SDK's ``timeout``).
    - ``max_attempts``: requests sent at most for one call (429, 529, 5xx, timeouts retry).
    - ``default_output_tokens``: the output estimate of a chat call without ``max_tokens`` or
      ``max_completion_tokens``.

    >>> import openai, ratewise
    >>> engine = ratewise.Engine({
    ...     "providers": [{"name": "gpt-4o", "quotas": [{"dimension": "tokens", "limit": 150000}]}],
    ...     "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-4o"}]}],
    ... })
    >>> client = ratewise.wrap_openai(openai.OpenAI(api_key="sk-test"), engine, lane="normal")
    >>> client.chat.completions.create  # doctest: +ELLIPSIS
    <bound method ChatCompletions.create of ...>
    """
    policy = Policy(engine, capability, lane, timeout_ms, max_attempts, default_output_tokens)
    import openai as sdk  # the caller has it: it made the client

    if isinstance(client, sdk.AsyncOpenAI):
        return AsyncRatewiseOpenAI(client, policy)
    if isinstance(client, sdk.OpenAI):
        return RatewiseOpenAI(client, policy)
    raise TypeError(f"wrap_openai() needs an openai.OpenAI or openai.AsyncOpenAI client, not {type(client).__name__}")
