"""Bad input is refused with the library's own ValueError subclasses, naming where it is: duplicate
keys in JSON text, numbers JSON cannot hold in a dict, control characters in names, integers
beyond 64 bits in a configuration or in call arguments."""

import asyncio
import collections.abc
import enum
import json

import pytest

import ratewise


def config_error(source, **kwargs):
    with pytest.raises(ratewise.InvalidConfigError) as err:
        ratewise.Engine(source, **kwargs)
    return str(err.value)


def test_duplicate_keys_in_json_text_are_refused_at_their_path(tmp_path, engine):
    assert config_error('{"providers": [], "providers": []}') == "providers: duplicate key"
    assert config_error('{"providers": [{"name": "a", "name": "b"}]}') == "providers[0].name: duplicate key"
    with pytest.raises(ratewise.InvalidConfigError) as err:
        ratewise.Engine.from_json('{"lanes": [{"name": "normal", "headroom": 0, "headroom": 0.5}]}')
    assert str(err.value) == "lanes[0].headroom: duplicate key"
    path = tmp_path / "ratewise.json"
    path.write_text('{"scoring": {"cost": 1, "cost": 0}}')
    assert config_error(path) == "scoring.cost: duplicate key"
    with pytest.raises(ratewise.InvalidConfigError) as err:
        engine.upsert_provider('{"name": "mini", "cooldown_ms": 1, "cooldown_ms": 2}')
    assert str(err.value) == "provider.cooldown_ms: duplicate key"
    with pytest.raises(ratewise.InvalidConfigError) as err:
        engine.upsert_capability('{"name": "x", "providers": [{"provider": "claude", "provider": "gpt-4o"}]}')
    assert str(err.value) == "capability.providers[0].provider: duplicate key"
    # Not JSON at all keeps its own message.
    assert config_error('{"providers": [}').startswith("configuration is not valid JSON: ")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_in_a_dict_are_refused_at_their_path(bad, engine):
    price = {"input_per_mtok": bad, "output_per_mtok": 1.0}
    message = config_error({"providers": [{"name": "a", "price": price}]})
    assert message == "providers[0].price.input_per_mtok: must be a finite number"
    with pytest.raises(ratewise.InvalidConfigError) as err:
        engine.upsert_provider({"name": "mini", "price": price})
    assert str(err.value) == "provider.price.input_per_mtok: must be a finite number"
    with pytest.raises(ratewise.InvalidConfigError) as err:
        engine.upsert_capability({"name": "x", "providers": [{"provider": "claude", "priority": bad}]})
    assert str(err.value) == "capability.providers[0].priority: must be a finite number"


@pytest.mark.parametrize("big", [2**64, 2**70, -(2**63) - 1, 10**400], ids=["2**64", "2**70", "-2**63-1", "10**400"])
def test_integers_beyond_64_bits_in_a_dict_are_refused_at_their_path(big):
    quota = {"dimension": "requests", "limit": big}
    message = config_error({"providers": [{"name": "a", "quotas": [quota]}]})
    assert message == "providers[0].quotas[0].limit: must fit in 64 bits"
    assert config_error({"permit_ttl_ms": big}) == "permit_ttl_ms: must fit in 64 bits"


def test_integers_beyond_64_bits_in_arguments_are_invalid_argument(engine, clock):
    permit = engine.acquire("chat")
    calls = {
        "select(input_tokens=2**70)": lambda: engine.select("chat", input_tokens=2**70),
        "acquire(output_tokens=2**64)": lambda: engine.acquire("chat", output_tokens=2**64),
        "acquire(timeout_ms=2**70)": lambda: engine.acquire("chat", timeout_ms=2**70),
        "acquire_async(timeout_ms=2**70)": lambda: engine.acquire_async("chat", timeout_ms=2**70),
        "enqueue(timeout_ms=-2**70)": lambda: engine.enqueue("chat", timeout_ms=-(2**70)),
        "observe(latency_ms=2**64)": lambda: engine.observe("claude", "success", latency_ms=2**64),
        "observe(requests=2**64)": lambda: engine.observe("claude", "success", requests=2**64),
        "observe(status=2**70)": lambda: engine.observe("claude", 2**70),
        "complete(2**64)": lambda: engine.complete(2**64, "success"),
        "complete(retry_after_ms=2**64)": lambda: engine.complete(permit.id, 429, retry_after_ms=2**64),
        "cancel(-1)": lambda: engine.cancel(-1),
        "Permit.complete(input_tokens=2**64)": lambda: permit.complete("success", input_tokens=2**64),
        "Permit.complete(latency_ms=10**400)": lambda: permit.complete("success", latency_ms=10**400),
        "ManualClock(2**63)": lambda: ratewise.ManualClock(2**63),
        "ManualClock.advance(2**64)": lambda: clock.advance(2**64),
        "status_from_http(2**70)": lambda: ratewise.status_from_http(2**70),
    }
    for name, call in calls.items():
        with pytest.raises(ratewise.InvalidArgumentError) as err:
            call()
        assert isinstance(err.value, ValueError), name
        assert "out of range" in str(err.value) or "outside 100-599" in str(err.value), (name, str(err.value))
    # Nothing was spent by the refused calls; the permit is still live.
    permit.complete("success")
    # An argument of the wrong type is still a TypeError.
    with pytest.raises(TypeError):
        engine.select("chat", input_tokens="5")
    with pytest.raises(TypeError):
        clock.advance(1.5)


def test_control_characters_in_names_are_refused(engine):
    assert config_error({"providers": [{"name": "a\tb"}]}) == (
        "providers[0].name: must not contain control characters (found U+0009)"
    )
    quota = {"dimension": "requests", "limit": 1, "key": "org\npool"}
    assert config_error({"providers": [{"name": "a", "quotas": [quota]}]}) == (
        "providers[0].quotas[0].key: must not contain control characters (found U+000A)"
    )
    with pytest.raises(ratewise.InvalidConfigError) as err:
        engine.upsert_provider({"name": "mini\x00"})
    assert str(err.value) == "provider.name: must not contain control characters (found U+0000)"


class Frozen(collections.abc.Mapping):
    def __init__(self, **items):
        self._items = items

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)


class Window(str, enum.Enum):
    MINUTE = "minute"


class Limit(enum.IntEnum):
    TEN = 10


def test_dicts_convert_as_json_would_write_them(clock):
    config = Frozen(
        providers=(Frozen(name="a", quotas=[{"dimension": "requests", "limit": Limit.TEN, "window": Window.MINUTE}]),),
        capabilities=[{"name": "chat", "providers": [{"provider": "a", "priority": 2.5}]}],
        lanes=None,
    )
    engine = ratewise.Engine(config, clock=clock)
    assert engine.remaining("a", "requests") == 10
    text = json.dumps({
        "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 10}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "a", "priority": 2.5}]}],
    })
    same = ratewise.Engine(text, clock=clock)
    assert engine.select("chat").score == same.select("chat").score
    # A float where an integer belongs is refused as in JSON text (10.0 is not a JSON integer).
    message = config_error({"providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 10.0}]}]})
    assert message == "providers[0].quotas[0].limit: must be an integer"


def test_what_json_cannot_hold_is_refused_at_its_path():
    assert config_error({"providers": [{"name": "a", 1: "x"}]}) == "providers[0]: keys must be strings, not int"
    assert config_error({"providers": [{"name": "a", "weight": object()}]}) == (
        "providers[0].weight: is not JSON-serialisable (type object)"
    )
    assert config_error({"providers": {"a", "b"}}) == "providers: is not JSON-serialisable (type set)"
    looped = {}
    looped["x"] = looped
    assert config_error(looped).endswith(": is nested too deeply")
    assert config_error({"providers": [{"name": "\ud800"}]}) == (
        "providers[0].name: must be valid Unicode (no lone surrogates)"
    )
    assert config_error(5) == "$: must be an object"


def test_acquire_async_still_waits(engine):
    async def main():
        permit = await engine.acquire_async("chat", timeout_ms=1000)
        permit.complete("success")
        return permit.provider

    assert asyncio.run(main()) == "gpt-4o"
