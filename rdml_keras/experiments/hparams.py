"""Log a sweep of runs to TensorBoard's HParams dashboard.

A sweep directory holds one run directory per trial, as written by
`rdml_keras.experiments.runner.train` (or `train_seeds`, one `seed<s>` folder each).
`log_sweep` writes the experiment definition (which hyperparameters and
metrics exist) at the sweep root; `log_run` writes one trial's
hyperparameters and test accuracies into its `logs/` folder, next to the
Keras TensorBoard runs `logs/train` and `logs/validation`, so the dashboard
also shows the last value of the validation scalars. Point TensorBoard at the
sweep root: served on its own, one run's `logs/` folder shows the
hyperparameters but not the metrics.

Hyperparameters: `divergence` (none, kl, renyi, dkl, ikl), `alpha` (the
Rényi order; independent training counts as 0 and KL/DML as 1, the orders
at which the Rényi divergence reduces to them; a cosine schedule's starting
α), `seed`, `peers`, `dataset`, `epochs`, `learning_rate`.
Metrics: `test_ensemble_accuracy`, `test_mean_peer_accuracy`,
`test_peer{k}_accuracy`, and `epoch_ensemble_accuracy` of the
`validation` / `train` runs.

Example:

```python
from rdml_keras.experiments import hparams, runner
from rdml_keras.experiments.config import load_config

base = load_config("configs/quickstart.yaml", ["epochs=2"])
hparams.log_sweep("runs/sweep", num_peers=2, alphas=[0.5, 1.0, 2.0])
for alpha in (0.5, 1.0, 2.0):
    config = base.replace(divergence=base.divergence.replace(alpha=alpha))
    run = f"runs/sweep/alpha{alpha:g}"
    runner.train(config, run)
    hparams.log_run(run)        # reads run/results.json
# tensorboard --logdir runs/sweep   ->  the HPARAMS tab
```
"""

from __future__ import annotations

import json
import pathlib

import tensorflow as tf
import yaml
from tensorboard.plugins.hparams import api as hp

from rdml_keras.experiments.config import DIVERGENCE_KINDS as DIVERGENCES

# Our event files carry this suffix, so re-logging replaces them instead of
# adding a second experiment or session to the same directory.
_SUFFIX = ".rdml_hparams"
_STANDARD = ("divergence", "alpha", "seed", "peers", "dataset", "epochs", "learning_rate")


def effective_alpha(divergence: dict) -> float:
    """The Rényi order a run's divergence config amounts to.

    >>> effective_alpha({"kind": "none"}), effective_alpha({"kind": "kl"})
    (0.0, 1.0)
    >>> effective_alpha({"kind": "renyi", "alpha": 1.5})
    1.5
    """
    kind = divergence.get("kind")
    if kind == "none":
        return 0.0
    if kind == "renyi":
        alpha = divergence.get("alpha")
        if alpha is None:  # cosine schedule: its starting value
            alpha = divergence.get("alpha_max")
        return float(alpha)
    return 1.0  # kl, and dkl/ikl which reduce to KL-style mimicry


def run_hparams(results: dict) -> dict:
    """Hyperparameter values of one results.json document.

    >>> cfg = {"dataset": {"name": "digits"}, "divergence": {"kind": "kl"},
    ...        "peers": [{"architecture": "mlp"}] * 2, "seed": 3, "epochs": 2,
    ...        "optimizer": {"learning_rate": 0.1}}
    >>> run_hparams({"config": cfg})["peers"], run_hparams({"config": cfg})["alpha"]
    ('mlp+mlp', 1.0)
    """
    config = results["config"]
    return {
        "divergence": config["divergence"]["kind"],
        "alpha": effective_alpha(config["divergence"]),
        "seed": int(config["seed"]),
        "peers": "+".join(p["architecture"] for p in config["peers"]),
        "dataset": config["dataset"]["name"],
        "epochs": int(config["epochs"]),
        "learning_rate": float(config["optimizer"]["learning_rate"]),
    }


def run_metrics(results: dict) -> dict:
    """Test accuracies of one results.json document, by metric tag.

    >>> run_metrics({"peers": [{"test_accuracy": 0.5}, {"test_accuracy": 0.7}],
    ...              "ensemble": {"test_accuracy": 0.75}})["test_mean_peer_accuracy"]
    0.6
    """
    peers = [float(p["test_accuracy"]) for p in results["peers"]]
    metrics = {
        "test_ensemble_accuracy": float(results["ensemble"]["test_accuracy"]),
        "test_mean_peer_accuracy": round(sum(peers) / len(peers), 6),
    }
    metrics.update({f"test_peer{k}_accuracy": a for k, a in enumerate(peers)})
    return metrics


def sweep_config(num_peers: int = 2, alphas=None, extra=()):
    """(hparams, metrics) lists for `hp.hparams_config`; `extra` names further
    hyperparameters (dotted config keys a sweep varies, e.g. dataset.train_size)."""
    alpha_domain = hp.Discrete(sorted({0.0, 1.0} | {float(a) for a in alphas})) if alphas else None
    hparams = [
        hp.HParam(
            "divergence",
            hp.Discrete(list(DIVERGENCES)),
            description="none = independent, kl = DML, renyi = RDML",
        ),
        hp.HParam("alpha", alpha_domain, description="Rényi order (0 = independent, 1 = KL/DML)"),
        hp.HParam("seed"),
        hp.HParam("peers"),
        hp.HParam("dataset"),
        hp.HParam("epochs"),
        hp.HParam("learning_rate"),
        *[hp.HParam(key) for key in extra or () if key not in _STANDARD],
    ]
    metrics = [
        hp.Metric("test_ensemble_accuracy", display_name="test ensemble accuracy"),
        hp.Metric("test_mean_peer_accuracy", display_name="test mean peer accuracy"),
        *[
            hp.Metric(f"test_peer{k}_accuracy", display_name=f"test peer{k} accuracy")
            for k in range(num_peers)
        ],
        hp.Metric(
            "epoch_ensemble_accuracy",
            group="validation",
            display_name="validation ensemble accuracy (last epoch)",
        ),
        hp.Metric(
            "epoch_ensemble_accuracy",
            group="train",
            display_name="train ensemble accuracy (last epoch)",
        ),
    ]
    return hparams, metrics


def _write(logdir: pathlib.Path, write):
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob(f"events.out.tfevents.*{_SUFFIX}"):
        old.unlink()
    writer = tf.summary.create_file_writer(str(logdir), filename_suffix=_SUFFIX)
    with writer.as_default():
        write()
    writer.close()


def log_sweep(logdir, num_peers: int = 2, alphas=None, extra=()) -> pathlib.Path:
    """Write the experiment definition at the sweep root `logdir`.

    Point TensorBoard at `logdir`. `alphas` (optional) makes α a discrete
    hyperparameter with those values (plus 0 and 1, the baselines).
    """
    logdir = pathlib.Path(logdir)
    hparams, metrics = sweep_config(num_peers, alphas, extra)
    _write(logdir, lambda: hp.hparams_config(hparams=hparams, metrics=metrics))
    return logdir


def log_run(run_dir, results: dict | None = None, extra: dict | None = None) -> pathlib.Path:
    """Log one finished run (its `results.json` unless `results` is given)
    as an HParams session in `<run_dir>/logs`; returns that folder. `extra`
    adds hyperparameters ({dotted key: value}; lists and mappings are logged
    as their YAML text, null as "null").

    The test accuracies become scalars (step: the last epoch's index) in the
    same folder. Calling it again replaces what it wrote before.
    """
    run_dir = pathlib.Path(run_dir)
    if results is None:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    step = max(int(results.get("epochs") or 1) - 1, 0)
    values = run_hparams(results)
    values.update(
        {key: _hparam_value(value) for key, value in (extra or {}).items() if key not in _STANDARD}
    )
    metrics = run_metrics(results)

    def write():
        hp.hparams(values)  # trial id: a hash of the values, seed included
        for tag, value in metrics.items():
            tf.summary.scalar(tag, value, step=step)

    logdir = run_dir / "logs"
    _write(logdir, write)
    return logdir


def _hparam_value(value):
    """HParams take bool, int, float or str."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "null"
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
