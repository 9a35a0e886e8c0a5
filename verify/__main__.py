"""``python -m verify`` is ``fastdnn-gradcheck``."""

import sys

from verify.cli import console

sys.exit(console())
