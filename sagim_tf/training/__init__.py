"""Training runs: configs (:mod:`.config`), named experiments (:mod:`.experiments`), the run
(:mod:`.run`) and its callbacks (:mod:`.callbacks`).

A run's config is a named experiment's defaults, then a config file, then ``key=value``
overrides, then validation (:func:`.experiments.load_experiment`).
"""
