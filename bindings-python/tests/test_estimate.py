"""``estimate_tokens`` walks dicts, lists and scalars natively, without first turning them into a
JSON value; anything else (a mapping that is not a dict, a value JSON cannot hold) goes the
converting way. The two ways must count alike: a value with a ``MappingProxyType`` anywhere in
it is walked the converting way, so each random value is counted both ways here.
"""

from __future__ import annotations

import random
from types import MappingProxyType
from typing import Any

import pytest

import ratewise

TEXTS = ["", "a", "abc", "Hello, how are you today?", "日本語", "naïve café", "🙂🙃", "x" * 301, "\u0000\u007f"]
IMAGES = ["image_url", "image", "input_image", "text", "imagex"]


def scalar(rng: random.Random) -> Any:
    pick = rng.randrange(9)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice([0, 7, -3, 12345, 2**63 - 1, -(2**63), 2**64 - 1])
    if pick == 3:
        return rng.choice([0.0, -0.0, 0.1, 1.5, 1e20, 1e-7, -2.5e300, 123456789.125])
    return rng.choice(TEXTS) + rng.choice(TEXTS)


def value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 4 or rng.random() < 0.35:
        return scalar(rng)
    pick = rng.randrange(4)
    if pick == 0:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 1:
        return tuple(value(rng, depth + 1) for _ in range(rng.randrange(3)))
    d = {rng.choice(["role", "content", "text", "name", "url", "data"]) + str(i): value(rng, depth + 1)
         for i in range(rng.randrange(4))}
    if rng.random() < 0.4:
        d["type"] = rng.choice(IMAGES)
    return d


def proxied(v: Any) -> Any:
    """``v`` with every dict a ``MappingProxyType``: the converting way."""
    if isinstance(v, dict):
        return MappingProxyType({k: proxied(x) for k, x in v.items()})
    if isinstance(v, list):
        return [proxied(x) for x in v]
    if isinstance(v, tuple):
        return tuple(proxied(x) for x in v)
    return v


def test_the_native_walk_counts_as_the_conversion_does() -> None:
    rng = random.Random(20261204)
    for _ in range(3000):
        v = value(rng)
        messages = [{"role": "user", "content": v}, v]
        # A list counts as the body {"messages": list}; a body as itself.
        slow = ratewise.estimate_tokens(MappingProxyType({"messages": proxied(messages)}))
        assert ratewise.estimate_tokens(messages) == slow, messages
        assert ratewise.estimate_tokens(tuple(messages)) == slow, messages
        body = {"system": v, "messages": messages}
        assert ratewise.estimate_tokens(body) == ratewise.estimate_tokens(proxied(body)), body


def test_what_json_cannot_hold_is_refused_at_its_path() -> None:
    for bad, message in [
        ([{"content": float("nan")}], "messages[0].content: must be a finite number"),
        ([{"content": [1, 2**64]}], "messages[0].content[1]: must fit in 64 bits"),
        ([{1: "x"}], "messages[0]: keys must be strings, not int"),
        ([{"content": object()}], "messages[0].content: is not JSON-serialisable (type object)"),
        ([{"content": "\ud800"}], "messages[0].content: must be valid Unicode (no lone surrogates)"),
        # inside an image part too, though its content is not counted
        ([{"type": "image_url", "image_url": {"url": float("inf")}}], "messages[0].image_url.url: must be a finite number"),
    ]:
        with pytest.raises(ratewise.InvalidArgumentError) as raised:
            ratewise.estimate_tokens(bad)
        assert str(raised.value) == message
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ratewise.InvalidArgumentError, match="nested too deeply"):
        ratewise.estimate_tokens(deep)


def test_the_depth_limit_is_the_conversions() -> None:
    for levels in range(124, 134):
        nested: Any = "abc"
        for _ in range(levels):
            nested = [nested]

        def counted(value: Any) -> Any:
            try:
                return ratewise.estimate_tokens(value)
            except ratewise.InvalidArgumentError as e:
                return str(e)

        assert counted({"messages": nested}) == counted(MappingProxyType({"messages": nested})), levels


def test_an_image_part_counts_its_fixed_tokens_whatever_it_holds() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}
    text = {"type": "text", "text": "abcdef"}
    # 3 + 4 + user 2 + (text 2 + abcdef 2) + the image
    assert ratewise.estimate_tokens([{"role": "user", "content": [text, image]}]) == 3 + 4 + 2 + 4 + 1_600  # IMAGE_TOKENS


def test_subclasses_of_str_dict_and_list_count_as_their_base() -> None:
    class S(str):
        pass

    class D(dict):  # type: ignore[type-arg]
        pass

    class L(list):  # type: ignore[type-arg]
        pass

    plain = [{"role": "user", "content": ["Hello", "日本"]}]
    assert ratewise.estimate_tokens(L([D(role=S("user"), content=L([S("Hello"), S("日本")]))])) == \
        ratewise.estimate_tokens(plain)


def test_keys_that_hash_as_they_like_count_as_the_json_object() -> None:
    class Key(str):
        def __hash__(self) -> int:
            return 1

        def __eq__(self, other: object) -> bool:
            return str.__eq__(self, other)

    # Python finds no "type" key here (the hashes differ); the JSON object has one: an image.
    odd = [{Key("type"): "image_url", "text": "abcdef"}]
    assert ratewise.estimate_tokens(odd) == 3 + 4 + 1_600
