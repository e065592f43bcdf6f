"""`python -m rdml_keras …` entry point."""

import os

# Before TensorFlow is imported (by the package), so its C++ start-up lines
# don't bury the command's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rdml_keras.cli import main  # noqa: E402

raise SystemExit(main())
