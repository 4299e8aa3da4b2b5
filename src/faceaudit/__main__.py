"""``python -m faceaudit`` runs the CLI."""

import sys

from faceaudit.cli import main

sys.exit(main())
