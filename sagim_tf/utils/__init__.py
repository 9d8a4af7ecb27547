"""The ground floor: errors (:mod:`.errors`), image files (:mod:`.io`) and input checks
(:mod:`.checks`). Imports nothing else of sagim_tf."""
