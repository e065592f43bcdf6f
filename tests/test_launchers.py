"""rdml_keras/launchers.py: the multi-process settings a launcher's
environment variables give, and the errors that name a bad variable."""

import pytest

from rdml_keras import launchers


def test_from_environment():
    assert launchers.from_environment({}) is None
    assert launchers.from_environment({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
    slurm = {
        "SLURM_NTASKS": "4",
        "SLURM_PROCID": "3",
        "MASTER_ADDR": "node01",
        "MASTER_PORT": "4321",
    }
    assert launchers.from_environment(slurm) == {
        "coordinator_address": "node01:4321",
        "num_processes": 4,
        "process_id": 3,
    }
    rdml = {
        "RDML_COORDINATOR": "10.0.0.1:99",
        "RDML_NUM_PROCESSES": "2",
        "RDML_PROCESS_ID": "0",
        **slurm,
    }
    assert launchers.from_environment(rdml)["coordinator_address"] == "10.0.0.1:99"
    keras_env = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:2",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "1",
    }
    assert launchers.from_environment(keras_env)["coordinator_address"] == "a:1"
    with pytest.raises(ValueError, match="SLURM_PROCID='4'.*process_id=4"):
        launchers.from_environment({**slurm, "SLURM_PROCID": "4"})
    with pytest.raises(ValueError, match="MASTER_PORT is not"):
        launchers.from_environment({k: v for k, v in slurm.items() if k != "MASTER_PORT"})
    with pytest.raises(ValueError, match="SLURM_NTASKS='two'"):
        launchers.from_environment({**slurm, "SLURM_NTASKS": "two"})
