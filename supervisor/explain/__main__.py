"""``python -m supervisor.explain [FILE]``: the explain subcommand without the rest of ``jarlpm``."""

import sys

from supervisor.explain.cli import main

sys.exit(main())
