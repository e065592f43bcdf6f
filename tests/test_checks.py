"""rdml_keras/checks.py: every check accepts what it should, normalises it, and
refuses the rest with one message format naming the argument and its value."""

import math

import numpy as np
import pytest

from rdml_keras import checks


@pytest.mark.parametrize("value", [3, np.int64(3), np.int8(3)])
def test_integer_accepts_python_and_numpy_ints(value):
    assert checks.integer("epochs", value, minimum=1) == 3
    assert type(checks.integer("epochs", value)) is int


@pytest.mark.parametrize("value", [True, 3.0, "3", None, 0])
def test_integer_refuses_bools_floats_strings_and_small_values(value):
    with pytest.raises(ValueError) as error:
        checks.integer("epochs", value, minimum=1)
    assert str(error.value) == f"`epochs` must be an integer >= 1; received epochs={value!r}."


@pytest.mark.parametrize(
    "value, kwargs, allowed",
    [
        (-0.1, {"minimum": 0}, "a finite number >= 0"),
        (0.0, {"above": 0}, "a finite number > 0"),
        (1.0, {"minimum": 0, "below": 1}, "a finite number >= 0 and < 1"),
        (math.nan, {}, "a finite number"),
        (math.inf, {}, "a finite number"),
        (True, {}, "a finite number"),
        ("x", {}, "a finite number"),
    ],
)
def test_number_refuses_out_of_bounds_and_non_finite_values(value, kwargs, allowed):
    with pytest.raises(ValueError) as error:
        checks.number("alpha", value, **kwargs)
    assert str(error.value) == f"`alpha` must be {allowed}; received alpha={value!r}."


def test_number_returns_a_float_and_adds_the_hint():
    assert checks.number("alpha", 2, minimum=0) == 2.0
    with pytest.raises(ValueError, match=r"received alpha=-1\. Use 0 for none\.$"):
        checks.number("alpha", -1, minimum=0, hint=" Use 0 for none.")


def test_one_of_names_every_choice():
    assert checks.one_of("update", "sequential", ("simultaneous", "sequential")) == "sequential"
    with pytest.raises(ValueError, match="one of 'a', 'b'; received update='c'"):
        checks.one_of("update", "c", ("a", "b"))


@pytest.mark.parametrize("address", ["10.0.0.1:1234", "node-3:1", "[::1]:65535"])
def test_coordinator_addresses_that_are_host_and_port(address):
    host, port = checks.validate_coordinator(address)
    assert f"{host}:{port}" == address


@pytest.mark.parametrize("address", ["10.0.0.1", ":1234", "h:0", "h:65536", "h:x", 1234, None])
def test_coordinator_addresses_without_a_host_or_a_valid_port(address):
    with pytest.raises(ValueError, match=f"received coordinator_address={address!r}"):
        checks.validate_coordinator(address)


def test_processes_and_ids():
    assert checks.validate_processes(4, 3) == (4, 3)
    with pytest.raises(ValueError, match=r"in \[0, num_processes=4\); received process_id=4"):
        checks.validate_processes(4, 4)
    with pytest.raises(ValueError, match="`num_processes` must be an integer >= 1"):
        checks.validate_processes(0, 0)
