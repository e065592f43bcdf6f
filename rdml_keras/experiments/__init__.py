"""The experiment application: YAML configs in, run directories out.

    stats        mean ± std, paired differences, quartiles (also for the benchmarks)
    config       the declared schema of a config file (pydantic), --set, errors
    run_files    the run directory's files, written atomically, and its lock
    data         a config's data (load_data): bundled, tfds or your own .npz arrays, images
                 or text; tf.data pipelines, augmentation, your own peers checked, a text
                 run's peer options, vocabulary.txt and string-input peers
    optimizers   the optimizer and its learning-rate schedule, with warm-up
    divergences  the divergence section as the learner's divergence (dkl/ikl keys)
    placement    where a run trains: one device, all local devices, N processes
    cohort       a config's peers, checked against its data, in a compiled MutualLearner
    callbacks    NaN guard, epoch history, per-peer histograms
    checkpoint   per-epoch checkpoints and bit-exact resume after a kill
    hparams      TensorBoard's HParams dashboard for a sweep
    report       tables and the α plot over finished runs, per-seed summaries
    runner       config -> data + peers -> MutualLearner.fit -> results.json
    sweep_spec   a sweep's grid, search, seeds and storage, checked up front
    sweep        the Optuna workers that run a sweep's trials, and its reports
    cli          `python -m rdml_keras train | evaluate | summarize | sweep | schema`

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
# unless the user asked for it (the CLI then also shows its start-up lines).
USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
