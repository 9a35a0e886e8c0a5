"""``python -m verify`` is ``fastdnn-gradcheck``."""

import sys

from verify.cli import main

sys.exit(main())
