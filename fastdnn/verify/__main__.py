"""``python -m fastdnn.verify`` is ``fastdnn-gradcheck``."""

import sys

from fastdnn.verify.cli import console

sys.exit(console())
