"""The one line every benchmark prints about the machine it ran on."""

import os
import platform
from importlib import metadata


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo where there is one).

    >>> isinstance(cpu_model(), str)
    True
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine():
    """CPU model, core count, GPUs, the Python / TensorFlow / JAX / Keras versions
    and the Keras backend.

    >>> "CPU cores" in machine()
    True
    """
    import keras
    import tensorflow as tf

    cpu = cpu_model()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [
            tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus
        ]
        accelerator = f"GPU: {', '.join(names)}"
    else:
        accelerator = "no GPU"
    try:
        jax = f"JAX {metadata.version('jax')}, "
    except metadata.PackageNotFoundError:
        jax = ""
    return (
        f"{cpu}, {os.cpu_count()} CPU cores, {accelerator}; Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, {jax}Keras "
        f"{keras.__version__} (backend {keras.backend.backend()})"
    )
