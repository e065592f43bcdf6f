"""The experiment application: YAML configs in, run directories out.

    config      the declared schema of a config file (pydantic), --set, errors
    run_files   the run directory's files, written atomically, and its lock
    placement   where a run trains: one device, all local devices, N processes
    callbacks   NaN guard, epoch history, per-peer histograms
    checkpoint  per-epoch checkpoints and bit-exact resume after a kill
    runner      config -> data + peers -> MutualLearner.fit -> results.json
    hparams     TensorBoard's HParams dashboard for a sweep
    report      tables and the α plot over finished runs
    sweep       grids and searches over config keys, on an Optuna study
    cli         `python -m rdml_keras train | evaluate | summarize | sweep | schema`

Data flows one way, in that order: each module imports only those above it.

Example:

```python
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.runner import train

results = train(load_config("configs/quickstart.yaml", ["epochs=1"]), "runs/quickstart")
```
"""

import os

# Quiet TensorFlow's C++ start-up chatter (before any module here imports it)
# unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
