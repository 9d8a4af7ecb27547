import sys

from sagim_tf.cli import main

sys.exit(main())
