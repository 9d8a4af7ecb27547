#!/usr/bin/env python
"""Train SaGIM: ``python scripts/train.py --config FILE [--set key=value ...]``.

The same as ``sagim train``. Run it again with the same arguments after an interruption
and it resumes from the last finished epoch. See configs/ for examples.
"""

import sys

from sagim_tf.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
