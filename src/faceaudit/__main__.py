"""``python -m faceaudit`` runs the CLI."""

import sys

from faceaudit.cli import main

if __name__ == "__main__":  # worker processes started by forkserver/spawn import this module too
    sys.exit(main())
