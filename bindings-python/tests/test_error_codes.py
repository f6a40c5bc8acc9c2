"""Every stable error code of the core has its own exception class (docs/design.md section 10)."""

import inspect

import ratewise
from ratewise import _native, errors


def classes_by_code() -> dict[str, list[type]]:
    out: dict[str, list[type]] = {}
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, ratewise.RatewiseError) and cls is not ratewise.RatewiseError:
            out.setdefault(cls.code, []).append(cls)
    return out


def test_every_core_code_has_exactly_one_class_exported_by_the_package() -> None:
    codes = list(_native.ERROR_CODES)
    assert len(codes) == len(set(codes)) == 8
    by_code = classes_by_code()
    assert sorted(by_code) == sorted(codes), "a core code without a class, or a class without a core code"
    for code in codes:
        (cls,) = by_code[code]
        assert getattr(ratewise, cls.__name__) is cls, f"{cls.__name__} is not exported by ratewise"


def test_the_codes_reachable_without_redis_raise_their_class() -> None:
    engine = ratewise.Engine('{"providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1}]}],'
                             ' "capabilities": [{"name": "chat", "providers": [{"provider": "a"}]}]}')
    engine.acquire("chat")
    attempts = {
        "invalid_config": lambda: ratewise.Engine('{"providers": 1}'),
        "invalid_argument": lambda: engine.acquire("chat", lane="nope"),
        "unknown_capability": lambda: engine.select("nope"),
        "unknown_provider": lambda: engine.health("nope"),
        "unknown_permit": lambda: engine.cancel(123456789),
        "no_available_provider": lambda: engine.acquire("chat"),
    }
    by_code = classes_by_code()
    for code, attempt in attempts.items():
        (cls,) = by_code[code]
        try:
            attempt()
        except ratewise.RatewiseError as e:
            assert type(e) is cls and e.code == code
        else:
            raise AssertionError(f"{code}: nothing was raised")
