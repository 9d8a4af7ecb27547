"""The networks: G (:mod:`.generator`), D (:mod:`.discriminator`), phi
(:mod:`.content_features`), the SaGIM training model (:mod:`.sagim`) and the one model
loader (:mod:`.loading`)."""
