"""The exception hierarchy: stable codes, ValueError for bad input, pickling."""

import pickle

import pytest

import ratewise
from ratewise import errors

CLASSES = {
    "invalid_config": (ratewise.InvalidConfigError, True),
    "invalid_argument": (ratewise.InvalidArgumentError, True),
    "unknown_capability": (ratewise.UnknownCapabilityError, True),
    "unknown_provider": (ratewise.UnknownProviderError, True),
    "unknown_permit": (ratewise.UnknownPermitError, True),
    "no_available_provider": (ratewise.NoAvailableProviderError, False),
    "store_unavailable": (ratewise.StoreUnavailableError, False),
    "store_conflict": (ratewise.StoreConflictError, False),
}


@pytest.mark.parametrize("code", sorted(CLASSES))
def test_codes_and_bases(code):
    cls, bad_input = CLASSES[code]
    assert cls.code == code
    assert issubclass(cls, ratewise.RatewiseError)
    assert issubclass(cls, ValueError) is bad_input


@pytest.mark.parametrize("code", sorted(CLASSES))
def test_errors_pickle(code):
    cls, _ = CLASSES[code]
    err = cls("something went wrong")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == "something went wrong" and back.code == code


def test_no_available_provider_pickles_with_details():
    err = ratewise.NoAvailableProviderError("none", 250, [("a", "held"), ("b", "quota:tokens")])
    back = pickle.loads(pickle.dumps(err))
    assert back.retry_after_ms == 250 and back.skipped == [("a", "held"), ("b", "quota:tokens")]


def test_every_error_is_exported():
    assert set(errors.__all__) <= set(ratewise.__all__)


def test_errors_raised_by_the_engine_are_these_classes(clock):
    with pytest.raises(ratewise.StoreUnavailableError):
        ratewise.Engine({"store": {"kind": "redis", "url": "redis://127.0.0.1:1/0", "on_error": "closed"}})
    engine = ratewise.Engine({"providers": [{"name": "a"}], "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}]},
                             clock=clock)
    with pytest.raises(ratewise.UnknownPermitError) as err:
        engine.cancel(12345)
    assert err.value.code == "unknown_permit"
    # A generic RatewiseError keeps a code it is given (for codes newer than this package).
    generic = pickle.loads(pickle.dumps(ratewise.RatewiseError("x", "future_code")))
    assert generic.code == "future_code"
