"""The SAM dataset builder (paper §4.1).

- :mod:`~sagim_tf.data.sam.builder`: :func:`build_sam` and :class:`BuildConfig`, selection
  and split;
- :mod:`~sagim_tf.data.sam.shards`: one shard's records, written atomically, and resuming;
- :mod:`~sagim_tf.data.sam.manifest`: ``manifest.json``, its format version and counts.
"""
