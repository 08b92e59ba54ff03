"""``python -m sf_pipeline.cli``: the same command as ``sf-pipeline``."""

import sys

from .main import main

sys.exit(main())
