"""``python -m fastdnn`` runs the ``fastdnn`` command."""

import sys

from fastdnn.cli import main

sys.exit(main())
