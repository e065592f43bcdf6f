"""What a launcher tells this process: the coordinator, the number of
processes and this process's id, read from its environment variables
(`RDML_*`, Keras's `KERAS_DISTRIBUTION_*`, Slurm's `srun`, torchrun-style
`WORLD_SIZE`/`RANK`). Pass the result to
`rdml_keras.distribution.initialize_multiprocess(**settings)`.

Plain Python: nothing here imports Keras or JAX.

Example:

>>> from_environment({"RDML_COORDINATOR": "10.0.0.1:99", "RDML_NUM_PROCESSES": "2",
...                   "RDML_PROCESS_ID": "0"})["num_processes"]
2
"""

import os

from rdml_keras.checks import validate_coordinator
from rdml_keras.checks import validate_processes

_ENVIRONMENTS = (
    # (coordinator, num_processes, process_id) variable names, first match wins.
    ("RDML_COORDINATOR", "RDML_NUM_PROCESSES", "RDML_PROCESS_ID"),
    (
        "KERAS_DISTRIBUTION_JOB_ADDRESSES",
        "KERAS_DISTRIBUTION_NUM_PROCESSES",
        "KERAS_DISTRIBUTION_PROCESS_ID",
    ),
    (("MASTER_ADDR", "MASTER_PORT"), "SLURM_NTASKS", "SLURM_PROCID"),
    (("MASTER_ADDR", "MASTER_PORT"), "WORLD_SIZE", "RANK"),
)


def from_environment(environ=None):
    """The multi-process settings a launcher gave this process, or None.

    Reads, first match wins:

    - `RDML_COORDINATOR` (`host:port`), `RDML_NUM_PROCESSES`, `RDML_PROCESS_ID`;
    - Keras's `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the first address is the
      coordinator), `KERAS_DISTRIBUTION_NUM_PROCESSES`,
      `KERAS_DISTRIBUTION_PROCESS_ID`;
    - Slurm's `SLURM_NTASKS` and `SLURM_PROCID`, with the coordinator from
      `MASTER_ADDR` and `MASTER_PORT` (set them in the batch script);
    - `WORLD_SIZE` and `RANK` (torchrun-style launchers) with `MASTER_ADDR`
      and `MASTER_PORT`.

    Returns None when none of these is set or the job has one process, else
    a dict with `coordinator_address`, `num_processes` and `process_id`, to
    pass to `initialize_multiprocess(**settings)`. Raises ValueError naming
    the variable and its value when a set is incomplete or invalid.

    Example:

    >>> from_environment({"SLURM_NTASKS": "2", "SLURM_PROCID": "1",
    ...                   "MASTER_ADDR": "node01", "MASTER_PORT": "4321"})
    {'coordinator_address': 'node01:4321', 'num_processes': 2, 'process_id': 1}
    >>> from_environment({}) is None
    True
    """
    environ = os.environ if environ is None else environ
    for coordinator_keys, count_key, id_key in _ENVIRONMENTS:
        if count_key not in environ:
            continue
        names = (
            list(coordinator_keys) if isinstance(coordinator_keys, tuple) else [coordinator_keys]
        )
        missing = [key for key in (*names, id_key) if key not in environ]
        count = _environment_int(environ, count_key, 1)
        if count == 1:
            return None
        if missing:
            raise ValueError(
                f"{count_key}={environ[count_key]!r} is set but "
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                f"not: a multi-process run needs the coordinator address, the "
                f"number of processes and this process's id."
            )
        process_id = _environment_int(environ, id_key, 0)
        if len(names) == 2:
            coordinator = f"{environ[names[0]]}:{environ[names[1]]}"
        else:
            coordinator = environ[names[0]].split(",")[0]
        try:
            validate_coordinator(coordinator)
            validate_processes(count, process_id)
        except ValueError as error:
            shown = " and ".join(f"{key}={environ[key]!r}" for key in names)
            raise ValueError(
                f"From the environment ({shown}, {count_key}={environ[count_key]!r}, "
                f"{id_key}={environ[id_key]!r}): {error}"
            ) from None
        return {
            "coordinator_address": coordinator,
            "num_processes": count,
            "process_id": process_id,
        }
    return None


def _environment_int(environ, key, minimum):
    value = environ[key]
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        raise ValueError(
            f"The environment variable {key} must be an integer >= {minimum}; "
            f"received {key}={value!r}."
        )
    return number
