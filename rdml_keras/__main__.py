"""`python -m rdml_keras …` entry point."""

from rdml_keras.cli import main

raise SystemExit(main())
