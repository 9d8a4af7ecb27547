"""Training runs: configs (:mod:`.config`), the run (:mod:`.run`) and its callbacks
(:mod:`.callbacks`)."""
