"""Subcommands of the ``sagim`` CLI, one module each (see :mod:`sagim_tf.cli`)."""
