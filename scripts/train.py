#!/usr/bin/env python
"""Train SaGIM: ``python scripts/train.py [--experiment NAME] [--config FILE] [--set k=v ...]``.

The same as ``sagim train``: the config is the named experiment's defaults (e.g. ``paper``,
``demo-cpu``; ``--list-experiments`` lists them), then the file's keys, then the ``--set``
overrides. Run it again with the same arguments after an interruption and it resumes from
the last finished epoch. See configs/ for override files.
"""

import os
import sys

# Use the sagim_tf of the checkout this script belongs to.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sagim_tf.cli import main  # noqa: E402  (after the path set-up above)

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
