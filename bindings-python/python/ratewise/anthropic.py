"""``ratewise.wrap_anthropic``: the Anthropic SDK's ``messages.create`` and ``messages.stream``,
routed, paced and settled by a ratewise engine.

>>> import anthropic, ratewise
>>> engine = ratewise.Engine({
...     "providers": [
...         {"name": "claude-main", "model": "claude-sonnet-4-5",
...          "quotas": [{"dimension": "requests", "limit": 50},
...                     {"dimension": "input_tokens", "limit": 30000, "count_cached": False},
...                     {"dimension": "output_tokens", "limit": 8000}]},
...     ],
...     "capabilities": [{"name": "chat", "providers": [{"provider": "claude-main"}]}],
... })
>>> client = ratewise.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant-test"), engine)
>>> def ask(question: str) -> str:
...     with client.messages.stream(
...         model="chat", max_tokens=512, messages=[{"role": "user", "content": question}]
...     ) as stream:
...         return "".join(stream.text_stream)

Every call works as ``ratewise.openai`` describes (estimate, wait in the lane, send with
``model=permit.model`` on ``client.with_options(max_retries=0)``, settle with the usage and
the headers, retry 429/529/503/5xx/timeouts elsewhere, raise other 4xx unchanged). Here:

- the input estimate counts ``system``, ``messages`` and ``tools``; the output estimate is
  ``max_tokens`` (which the API requires);
- usage: Anthropic's ``input_tokens`` excludes prompt-cache reads and writes, so the permit is
  settled with ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` as
  input, ``cache_read_input_tokens`` as ``cached_input_tokens`` (a quota with
  ``"count_cached": false``, as Anthropic's input-token limits are, then does not count them)
  and ``cache_creation_input_tokens`` as ``cache_write_input_tokens`` (a ``price`` with
  ``cache_write_input_per_mtok`` prices them apart);
- a 529 is ``overloaded``: the deployment is held for ``overload_hold_ms`` and the call moves
  to the next one;
- streams (``messages.create(stream=True)``, and ``messages.stream(...)``, whose object
  proxies the SDK's ``MessageStream``: iteration, ``text_stream``, ``get_final_message()``,
  ``get_final_text()``, ``until_done()``, ``current_message_snapshot``) take their usage from
  ``message_start`` and ``message_delta`` (the delta's cumulative counts win). The call
  returns once the first event has arrived, so a 529 or an ``overloaded_error`` event before
  any output can still move elsewhere. Reading to the end settles a success; an exception
  while reading settles ``interrupted`` with the usage seen (the output estimate stands unless
  ``message_delta`` reported it) and re-raises; a stream closed early or dropped settles
  ``interrupted``.

The SDK is an optional dependency (``pip install ratewise[anthropic]``): this module imports it
only when a client is wrapped.
"""

from __future__ import annotations

# The client's type is checked at run time for callers that do not type-check.
# pyright: reportUnnecessaryIsInstance=false

from functools import partial
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Literal,
    Optional,
    Tuple,
    Union,
    overload,
)

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
)

if TYPE_CHECKING:
    import httpx2
    from typing_extensions import Self  # typing.Self needs 3.11; only the checkers read it
    from anthropic import Anthropic, AsyncAnthropic
    from anthropic.lib.streaming import MessageStreamEvent
    from anthropic.types import Message, MessageParam, RawMessageStreamEvent

__all__ = [
    "wrap_anthropic",
    "RatewiseAnthropic",
    "AsyncRatewiseAnthropic",
    "MessageEventStream",
    "AsyncMessageEventStream",
    "MessageStream",
    "AsyncMessageStream",
    "MessageStreamManager",
    "AsyncMessageStreamManager",
]

_END: Any = object()


def _estimate(kwargs: "dict[str, Any]") -> "tuple[int, int]":
    given: Any = kwargs.get("messages")
    if given is None:
        raise TypeError("messages.create() needs messages=")
    messages: Any = as_list(given)  # a one-shot iterable is read twice: estimate and send
    if messages is not given:
        kwargs["messages"] = messages
    system: Any = kwargs.get("system")
    tools: Any = kwargs.get("tools")
    body: Any = messages
    if system is not None or tools is not None:
        body = {"messages": messages}
        if system is not None:
            system = as_list(system)
            kwargs["system"] = body["system"] = system
        if tools is not None:
            tools = as_list(tools)
            kwargs["tools"] = body["tools"] = tools
    max_tokens = int_or_none(kwargs.get("max_tokens"))
    if max_tokens is None:
        raise TypeError("messages.create() needs max_tokens= (an int: the output estimate and the API's limit)")
    return estimate(body), max_tokens


_Parts = Tuple[Optional[int], Optional[int], Optional[int]]


def _input_parts(base: Optional[int], read: Optional[int], written: Optional[int]) -> _Parts:
    """``(input incl. cache reads and writes, cache reads, cache writes)`` from Anthropic's three
    input counters (its ``input_tokens`` excludes both); nothing is reported without
    ``input_tokens``."""
    if base is None:
        return None, None, None
    return base + (read or 0) + (written or 0), read or 0, written or 0


def _usage_numbers(usage: Any) -> _Parts:
    """:func:`_input_parts` of an Anthropic usage object."""
    return _input_parts(
        int_or_none(getattr(usage, "input_tokens", None)),
        int_or_none(getattr(usage, "cache_read_input_tokens", None)),
        int_or_none(getattr(usage, "cache_creation_input_tokens", None)),
    )


def _prefer(delta: Any, field: str, current: Optional[int]) -> Optional[int]:
    value = int_or_none(getattr(delta, field, None))
    return current if value is None else value


class _Usage:
    """Usage seen on a stream: ``message_start``, then the cumulative ``message_delta``."""

    __slots__ = ("start", "delta")

    def __init__(self) -> None:
        self.start: Any = None
        self.delta: Any = None

    def see(self, event: Any) -> None:
        kind = event.type
        if kind == "message_start":
            self.start = event.message.usage
        elif kind == "message_delta":
            self.delta = event.usage

    def settle(self, permit: Permit, status: str, latency_ms: int, headers: Any) -> None:
        start, delta = self.start, self.delta
        input_tokens: Optional[int] = None
        cached: Optional[int] = None
        cache_written: Optional[int] = None
        output_tokens: Optional[int] = None
        if start is not None:
            base = int_or_none(getattr(start, "input_tokens", None))
            read = int_or_none(getattr(start, "cache_read_input_tokens", None))
            written = int_or_none(getattr(start, "cache_creation_input_tokens", None))
            if delta is not None:
                # The delta's counts are cumulative: they win where present.
                base = _prefer(delta, "input_tokens", base)
                read = _prefer(delta, "cache_read_input_tokens", read)
                written = _prefer(delta, "cache_creation_input_tokens", written)
            input_tokens, cached, cache_written = _input_parts(base, read, written)
        if delta is not None:
            # Only message_delta (sent just before message_stop) reports the output; before it
            # the output estimate stands.
            output_tokens = int_or_none(getattr(delta, "output_tokens", None))
        complete_usage(permit, status, latency_ms, headers, input_tokens, output_tokens, cached, cache_written)


def _finish_json(permit: Permit, headers: Any, message: Any, t0: float) -> Any:
    input_tokens, cached, written = _usage_numbers(getattr(message, "usage", None))
    output_tokens = int_or_none(getattr(getattr(message, "usage", None), "output_tokens", None))
    complete_usage(permit, "success", elapsed_ms(t0), headers, input_tokens, output_tokens, cached, written)
    return message


class _Opening:
    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False

    def __call__(self) -> bool:
        return self.seen


class _EventsBase:
    __slots__ = ("_stream", "_permit", "_latency_ms", "_headers", "_pending", "_usage", "_open")

    def __init__(self, stream: Any, permit: Permit, latency_ms: int, first: Any, usage: _Usage) -> None:
        self._stream = stream
        self._permit = permit
        self._latency_ms = latency_ms
        response = getattr(stream, "response", None)
        self._headers = getattr(response, "headers", None)
        self._pending = first
        self._usage = usage
        self._open = True

    @property
    def response(self) -> "httpx2.Response":
        """The HTTP response of the stream."""
        return self._stream.response  # type: ignore[no-any-return]

    @property
    def permit(self) -> Permit:
        """The permit this stream is settled on."""
        return self._permit

    def _finish(self, status: str) -> None:
        if self._open:
            self._open = False
            self._usage.settle(self._permit, status, self._latency_ms, self._headers)

    def __del__(self) -> None:
        try:
            if self._open:
                self._finish("interrupted")
        except Exception:
            pass


class MessageEventStream(_EventsBase):
    """The events of ``messages.create(stream=True)`` (the SDK's ``RawMessageStreamEvent``)."""

    __slots__ = ()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> "RawMessageStreamEvent":
        event = self._pending
        if event is not None:
            self._pending = None
            if event is _END:
                self._finish("success")
                raise StopIteration
            return event  # type: ignore[no-any-return]
        if not self._open:
            raise StopIteration
        try:
            event = self._stream.__next__()
        except StopIteration:
            self._finish("success")
            raise
        except BaseException:
            self._finish("interrupted")
            raise
        self._usage.see(event)
        return event  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop reading; an unfinished stream settles ``interrupted``."""
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


class AsyncMessageEventStream(_EventsBase):
    """The events of ``await messages.create(stream=True)`` on ``AsyncAnthropic``."""

    __slots__ = ()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> "RawMessageStreamEvent":
        event = self._pending
        if event is not None:
            self._pending = None
            if event is _END:
                self._finish("success")
                raise StopAsyncIteration
            return event  # type: ignore[no-any-return]
        if not self._open:
            raise StopAsyncIteration
        try:
            event = await self._stream.__anext__()
        except StopAsyncIteration:
            self._finish("success")
            raise
        except BaseException:
            self._finish("interrupted")
            raise
        self._usage.see(event)
        return event  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Stop reading; an unfinished stream settles ``interrupted``."""
        self._finish("interrupted")
        await self._stream.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.close()


class MessageStream(MessageEventStream):
    """What ``with client.messages.stream(...) as stream:`` gives: the SDK's ``MessageStream``,
    proxied so that every event passes through the settlement."""

    __slots__ = ()

    def __next__(self) -> "MessageStreamEvent":  # type: ignore[override]
        return super().__next__()  # type: ignore[return-value]

    @property
    def text_stream(self) -> Iterator[str]:
        """The text deltas, as the SDK's ``text_stream``."""
        return self._text()

    def _text(self) -> Iterator[str]:
        for event in self:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    def until_done(self) -> None:
        """Read the stream to its end."""
        for _ in self:
            pass

    def get_final_message(self) -> "Message":
        """Read to the end; the accumulated message."""
        self.until_done()
        return self._stream.get_final_message()  # type: ignore[no-any-return]

    def get_final_text(self) -> str:
        """Read to the end; the text of every text block."""
        self.until_done()
        return self._stream.get_final_text()  # type: ignore[no-any-return]

    @property
    def current_message_snapshot(self) -> "Message":
        """The message accumulated so far."""
        return self._stream.current_message_snapshot  # type: ignore[no-any-return]

    @property
    def request_id(self) -> Optional[str]:
        return self._stream.request_id  # type: ignore[no-any-return]


class AsyncMessageStream(AsyncMessageEventStream):
    """What ``async with client.messages.stream(...) as stream:`` gives (``AsyncAnthropic``)."""

    __slots__ = ()

    async def __anext__(self) -> "MessageStreamEvent":  # type: ignore[override]
        return await super().__anext__()  # type: ignore[return-value]

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """The text deltas, as the SDK's ``text_stream``."""
        return self._text()

    async def _text(self) -> AsyncIterator[str]:
        async for event in self:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    async def until_done(self) -> None:
        """Read the stream to its end."""
        async for _ in self:
            pass

    async def get_final_message(self) -> "Message":
        """Read to the end; the accumulated message."""
        await self.until_done()
        return await self._stream.get_final_message()  # type: ignore[no-any-return]

    async def get_final_text(self) -> str:
        """Read to the end; the text of every text block."""
        await self.until_done()
        return await self._stream.get_final_text()  # type: ignore[no-any-return]

    @property
    def current_message_snapshot(self) -> "Message":
        """The message accumulated so far."""
        return self._stream.current_message_snapshot  # type: ignore[no-any-return]

    @property
    def request_id(self) -> Optional[str]:
        return self._stream.request_id  # type: ignore[no-any-return]


class MessageStreamManager:
    """``client.messages.stream(...)``: entering it acquires, sends and waits for the first
    event (retrying a failure before it); leaving it closes the stream."""

    __slots__ = ("_open", "_stream")

    def __init__(self, open_stream: "Callable[[], MessageStream]") -> None:
        self._open = open_stream
        self._stream: Optional[MessageStream] = None

    def __enter__(self) -> MessageStream:
        self._stream = self._open()
        return self._stream

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if self._stream is not None:
            self._stream.close()


class AsyncMessageStreamManager:
    """``client.messages.stream(...)`` on ``AsyncAnthropic`` (``async with``)."""

    __slots__ = ("_open", "_stream")

    def __init__(self, open_stream: "Callable[[], Awaitable[AsyncMessageStream]]") -> None:
        self._open = open_stream
        self._stream: Optional[AsyncMessageStream] = None

    async def __aenter__(self) -> AsyncMessageStream:
        self._stream = await self._open()
        return self._stream

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if self._stream is not None:
            await self._stream.close()


class Messages:
    """``messages`` of a wrapped ``Anthropic`` client."""

    __slots__ = ("_policy", "_raw_create", "_create", "_stream")

    def __init__(self, policy: Policy, client: Any) -> None:
        self._policy = policy
        self._raw_create = client.messages.with_raw_response.create
        self._create = client.messages.create
        self._stream = client.messages.stream

    @overload
    def create(
        self,
        *,
        max_tokens: int,
        messages: "Iterable[MessageParam]",
        model: Optional[str] = ...,
        stream: Optional[Literal[False]] = ...,
        **kwargs: Any,
    ) -> "Message": ...
    @overload
    def create(
        self,
        *,
        max_tokens: int,
        messages: "Iterable[MessageParam]",
        model: Optional[str] = ...,
        stream: Literal[True],
        **kwargs: Any,
    ) -> MessageEventStream: ...
    def create(self, **kwargs: Any) -> "Union[Message, MessageEventStream]":
        """``client.messages.create(...)``, through the engine; ``model=`` names the capability."""
        policy = self._policy
        capability = policy.capability_for(kwargs.get("model"), "messages.create")
        input_tokens, output_tokens = _estimate(kwargs)
        if kwargs.get("stream") is True:
            create = self._create
            opening = _Opening()
            usage = _Usage()

            def open_events(permit: Permit) -> "tuple[Any, Any]":
                opening.seen = False
                kwargs["model"] = permit.model
                stream = create(**kwargs)
                opening.seen = True
                return stream, _first(stream, usage)

            permit, (stream, first), t0 = run(policy, capability, input_tokens, output_tokens, open_events, opening)
            return MessageEventStream(stream, permit, elapsed_ms(t0), first, usage)
        raw_create = self._raw_create

        def send(permit: Permit) -> Any:
            kwargs["model"] = permit.model
            return raw_create(**kwargs)

        permit, raw, t0 = run(policy, capability, input_tokens, output_tokens, send)
        try:
            message = raw.parse()
        except BaseException:
            settle(permit, "interrupted", raw.headers, t0)
            raise
        return _finish_json(permit, raw.headers, message, t0)  # type: ignore[no-any-return]

    def stream(
        self,
        *,
        max_tokens: int,
        messages: "Iterable[MessageParam]",
        model: Optional[str] = None,
        **kwargs: Any,
    ) -> MessageStreamManager:
        """``client.messages.stream(...)``: a context manager yielding a :class:`MessageStream`."""
        kwargs["max_tokens"] = max_tokens
        kwargs["messages"] = messages
        kwargs["model"] = model
        return MessageStreamManager(partial(self._open_stream, kwargs))

    def _open_stream(self, kwargs: "dict[str, Any]") -> MessageStream:
        policy = self._policy
        capability = policy.capability_for(kwargs.get("model"), "messages.stream")
        input_tokens, output_tokens = _estimate(kwargs)
        open_manager = self._stream
        opening = _Opening()
        usage = _Usage()

        def send(permit: Permit) -> "tuple[Any, Any]":
            opening.seen = False
            kwargs["model"] = permit.model
            manager = open_manager(**kwargs)
            stream = manager.__enter__()
            opening.seen = True
            return stream, _first(stream, usage)

        permit, (stream, first), t0 = run(policy, capability, input_tokens, output_tokens, send, opening)
        return MessageStream(stream, permit, elapsed_ms(t0), first, usage)


def _first(stream: Any, usage: _Usage) -> Any:
    """The first event of ``stream`` (``_END`` for none); closes the stream if reading fails."""
    try:
        event = stream.__next__()
    except StopIteration:
        return _END
    except BaseException:
        stream.close()
        raise
    usage.see(event)
    return event


async def _afirst(stream: Any, usage: _Usage) -> Any:
    try:
        event = await stream.__anext__()
    except StopAsyncIteration:
        return _END
    except BaseException:
        await stream.close()
        raise
    usage.see(event)
    return event


class AsyncMessages:
    """``messages`` of a wrapped ``AsyncAnthropic`` client."""

    __slots__ = ("_policy", "_raw_create", "_create", "_stream")

    def __init__(self, policy: Policy, client: Any) -> None:
        self._policy = policy
        self._raw_create = client.messages.with_raw_response.create
        self._create = client.messages.create
        self._stream = client.messages.stream

    @overload
    async def create(
        self,
        *,
        max_tokens: int,
        messages: "Iterable[MessageParam]",
        model: Optional[str] = ...,
        stream: Optional[Literal[False]] = ...,
        **kwargs: Any,
    ) -> "Message": ...
    @overload
    async def create(
        self,
        *,
        max_tokens: int,
        messages: "Iterable[MessageParam]",
        model: Optional[str] = ...,
        stream: Literal[True],
        **kwargs: Any,
    ) -> AsyncMessageEventStream: ...
    async def create(self, **kwargs: Any) -> "Union[Message, AsyncMessageEventStream]":
        """``await client.messages.create(...)``, through the engine."""
        policy = self._policy
        capability = policy.capability_for(kwargs.get("model"), "messages.create")
        input_tokens, output_tokens = _estimate(kwargs)
        if kwargs.get("stream") is True:
            create = self._create
            opening = _Opening()
            usage = _Usage()

            async def open_events(permit: Permit) -> "tuple[Any, Any]":
                opening.seen = False
                kwargs["model"] = permit.model
                stream = await create(**kwargs)
                opening.seen = True
                return stream, await _afirst(stream, usage)

            permit, (stream, first), t0 = await run_async(
                policy, capability, input_tokens, output_tokens, open_events, opening
            )
            return AsyncMessageEventStream(stream, permit, elapsed_ms(t0), first, usage)
        raw_create = self._raw_create

        async def send(permit: Permit) -> Any:
            kwargs["model"] = permit.model
            return await raw_create(**kwargs)

        permit, raw, t0 = await run_async(policy, capability, input_tokens, output_tokens, send)
        try:
            message = await raw.parse()
        except BaseException:
            settle(permit, "interrupted", raw.headers, t0)
            raise
        return _finish_json(permit, raw.headers, message, t0)  # type: ignore[no-any-return]

    def stream(
        self,
        *,
        max_tokens: int,
        messages: "Iterable[MessageParam]",
        model: Optional[str] = None,
        **kwargs: Any,
    ) -> AsyncMessageStreamManager:
        """``client.messages.stream(...)``: an async context manager yielding an
        :class:`AsyncMessageStream`."""
        kwargs["max_tokens"] = max_tokens
        kwargs["messages"] = messages
        kwargs["model"] = model
        return AsyncMessageStreamManager(partial(self._open_stream, kwargs))

    async def _open_stream(self, kwargs: "dict[str, Any]") -> AsyncMessageStream:
        policy = self._policy
        capability = policy.capability_for(kwargs.get("model"), "messages.stream")
        input_tokens, output_tokens = _estimate(kwargs)
        open_manager = self._stream
        opening = _Opening()
        usage = _Usage()

        async def send(permit: Permit) -> "tuple[Any, Any]":
            opening.seen = False
            kwargs["model"] = permit.model
            manager = open_manager(**kwargs)
            stream = await manager.__aenter__()
            opening.seen = True
            return stream, await _afirst(stream, usage)

        permit, (stream, first), t0 = await run_async(
            policy, capability, input_tokens, output_tokens, send, opening
        )
        return AsyncMessageStream(stream, permit, elapsed_ms(t0), first, usage)


class RatewiseAnthropic:
    """An ``anthropic.Anthropic`` client whose ``messages.create`` and ``messages.stream`` go
    through a ratewise engine (see the module's documentation). ``client`` is the client as
    given; anything else is called on it directly, without ratewise."""

    __slots__ = ("client", "engine", "messages", "_policy")

    def __init__(self, client: "Anthropic", policy: Policy) -> None:
        self.client = client
        self.engine: Engine = policy.engine
        self._policy = policy
        self.messages = Messages(policy, client.with_options(max_retries=0))

    def with_options(self, **options: Any) -> "RatewiseAnthropic":
        """The same wrapper over ``client.with_options(**options)`` (its retries stay off)."""
        return RatewiseAnthropic(self.client.with_options(**options), self._policy)

    def __repr__(self) -> str:
        return f"RatewiseAnthropic(capability={self._policy.capability!r}, lane={self._policy.lane!r})"


class AsyncRatewiseAnthropic:
    """An ``anthropic.AsyncAnthropic`` client whose ``messages.create`` and ``messages.stream``
    go through a ratewise engine."""

    __slots__ = ("client", "engine", "messages", "_policy")

    def __init__(self, client: "AsyncAnthropic", policy: Policy) -> None:
        self.client = client
        self.engine: Engine = policy.engine
        self._policy = policy
        self.messages = AsyncMessages(policy, client.with_options(max_retries=0))

    def with_options(self, **options: Any) -> "AsyncRatewiseAnthropic":
        """The same wrapper over ``client.with_options(**options)`` (its retries stay off)."""
        return AsyncRatewiseAnthropic(self.client.with_options(**options), self._policy)

    def __repr__(self) -> str:
        return f"AsyncRatewiseAnthropic(capability={self._policy.capability!r}, lane={self._policy.lane!r})"


@overload
def wrap_anthropic(
    client: "AsyncAnthropic",
    engine: Engine,
    *,
    capability: Optional[str] = None,
    lane: Optional[str] = None,
    timeout_ms: int = 30_000,
    max_attempts: int = 3,
) -> AsyncRatewiseAnthropic: ...
@overload
def wrap_anthropic(
    client: "Anthropic",
    engine: Engine,
    *,
    capability: Optional[str] = None,
    lane: Optional[str] = None,
    timeout_ms: int = 30_000,
    max_attempts: int = 3,
) -> RatewiseAnthropic: ...
def wrap_anthropic(
    client: "Union[Anthropic, AsyncAnthropic]",
    engine: Engine,
    *,
    capability: Optional[str] = None,
    lane: Optional[str] = None,
    timeout_ms: int = 30_000,
    max_attempts: int = 3,
) -> "Union[RatewiseAnthropic, AsyncRatewiseAnthropic]":
    """Wrap an ``anthropic.Anthropic`` (sync) or ``anthropic.AsyncAnthropic`` (async) client.

    The options are those of :func:`ratewise.wrap_openai` (``max_tokens`` is required by the
    API, so no default output estimate is needed).

    >>> import anthropic, ratewise
    >>> engine = ratewise.Engine({
    ...     "providers": [{"name": "claude", "quotas": [{"dimension": "requests", "limit": 50}]}],
    ...     "capabilities": [{"name": "chat", "providers": [{"provider": "claude"}]}],
    ... })
    >>> client = ratewise.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant-test"), engine)
    >>> client.messages.stream  # doctest: +ELLIPSIS
    <bound method Messages.stream of ...>
    """
    policy = Policy(engine, capability, lane, timeout_ms, max_attempts, 0)
    import anthropic as sdk  # the caller has it: it made the client

    if isinstance(client, sdk.AsyncAnthropic):
        return AsyncRatewiseAnthropic(client, policy)
    if isinstance(client, sdk.Anthropic):
        return RatewiseAnthropic(client, policy)
    raise TypeError(
        f"wrap_anthropic() needs an anthropic.Anthropic or anthropic.AsyncAnthropic client, not {type(client).__name__}"
    )
