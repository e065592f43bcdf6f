"""`python -m rdml_keras …` entry point (the experiment application's CLI)."""

from rdml_keras.experiments.cli import main

raise SystemExit(main())
