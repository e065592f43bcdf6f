"""Argument checks of the public API, with one message format:

    `name` must be <what is allowed>; received name=<value>.

Each check returns the value normalised (an int, a float) or raises
ValueError before any work starts. (The YAML config has its own words,
`key: got value; expected …`, in `rdml_keras.experiments.config`.)

>>> integer("epochs", 3, minimum=1)
3
>>> number("alpha", -1, minimum=0)
Traceback (most recent call last):
...
ValueError: `alpha` must be a finite number >= 0; received alpha=-1.
"""

import math
import numbers

DEFAULT_ALPHA = 1.0
"""The Rényi order α when none is given: 1, i.e. KL (vanilla DML). One value for
`RenyiDivergence`, `MutualLearner(divergence="renyi")` and the YAML config's
`divergence: {kind: renyi}` (kept here, Keras-free, so the config can read it)."""


def fail(name, value, allowed, hint=""):
    """Raise the package's ValueError for argument `name`."""
    raise ValueError(f"`{name}` must be {allowed}; received {name}={value!r}.{hint}")


def is_integer(value):
    """Whether `value` is an integer (a Python or numpy int), not a bool.

    `bool` is an int subclass, but `batch_size=True` is a bug, not a batch of one.

    >>> is_integer(3), is_integer(True), is_integer(3.0)
    (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(name, value, minimum=None):
    """`value` as an int (not a bool, not a float) >= `minimum`.

    >>> integer("num_classes", 1, minimum=2)
    Traceback (most recent call last):
    ...
    ValueError: `num_classes` must be an integer >= 2; received num_classes=1.
    """
    allowed = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if not is_integer(value) or (minimum is not None and value < minimum):
        fail(name, value, allowed)
    return int(value)


def number(name, value, *, minimum=None, above=None, below=None, hint=""):
    """`value` as a finite float, `>= minimum`, `> above`, `< below`.

    >>> number("momentum", 1.0, minimum=0, below=1)
    Traceback (most recent call last):
    ...
    ValueError: `momentum` must be a finite number >= 0 and < 1; received momentum=1.0.
    """
    allowed = number_phrase(minimum=minimum, above=above, below=below)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if (
        isinstance(value, bool)
        or not math.isfinite(number)
        or (minimum is not None and number < minimum)
        or (above is not None and number <= above)
        or (below is not None and number >= below)
    ):
        fail(name, value, allowed, hint)
    return number


def number_phrase(*, minimum=None, above=None, below=None):
    """What a bounded number must be, in words: the phrase of `number`'s
    messages, which the config's messages use too.

    >>> number_phrase(minimum=0, below=1)
    'a finite number >= 0 and < 1'
    """
    bounds = [
        f"{symbol} {bound:g}"
        for symbol, bound in ((">=", minimum), (">", above), ("<", below))
        if bound is not None
    ]
    return "a finite number" + (" " + " and ".join(bounds) if bounds else "")


def one_of(name, value, choices):
    """`value` if it is one of `choices`.

    >>> one_of("update", "parallel", ("simultaneous", "sequential"))
    Traceback (most recent call last):
    ...
    ValueError: `update` must be one of 'simultaneous', 'sequential'; received update='parallel'.
    """
    if value not in choices:
        fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def validate_coordinator(coordinator_address):
    """Check a `host:port` coordinator address; returns `(host, port)`.

    Example:

    >>> validate_coordinator("10.0.0.1:1234")
    ('10.0.0.1', 1234)
    >>> validate_coordinator("10.0.0.1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `coordinator_address` must be 'host:port' ...; received ...
    """
    host, sep, port = str(coordinator_address).rpartition(":")
    valid = (
        isinstance(coordinator_address, str)
        and sep == ":"
        and host.strip("[]") != ""
        and port.isdigit()
        and 1 <= int(port) <= 65535
    )
    if not valid:
        raise ValueError(
            f"`coordinator_address` must be 'host:port' with a port in "
            f"1..65535; received coordinator_address={coordinator_address!r}."
        )
    return host, int(port)


def validate_processes(num_processes, process_id):
    """Check a process count and a process id; returns them as ints.

    Raises ValueError naming the bad value: `num_processes` must be an
    integer of at least 1 and `process_id` an integer in `[0, num_processes)`.

    Example:

    >>> validate_processes(2, 1)
    (2, 1)
    >>> validate_processes(2, 2)
    Traceback (most recent call last):
    ...
    ValueError: `process_id` must be in [0, num_processes=2); received process_id=2.
    """
    num_processes = integer("num_processes", num_processes, 1)
    process_id = integer("process_id", process_id, 0)
    if process_id >= num_processes:
        raise ValueError(
            f"`process_id` must be in [0, num_processes={num_processes}); "
            f"received process_id={process_id}."
        )
    return num_processes, process_id
