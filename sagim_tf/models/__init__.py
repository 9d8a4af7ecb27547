"""The networks and the model that trains them.

* :mod:`.generator` -- G, the manipulation network (residual head).
* :mod:`.operator_head` -- G's photographic-operator head (parameter fields).
* :mod:`.discriminator` -- D, the PatchGAN discriminator.
* :mod:`.content_features` -- phi, the frozen VGG features of the content and cycle losses.
* :mod:`.sagim` -- SaGIM, the Keras model whose ``train_step`` plays the GAN game.
* :mod:`.batches` -- unpacking and checking a training batch.
* :mod:`.compile_options` -- loss weights, optimizers and precision for ``SaGIM.compile``.
* :mod:`.generate` -- the one cached, compiled step that runs G for inference.
* :mod:`.loading` -- the one model loader (``.keras`` files), with clear errors.
"""

#: G's output heads: the paper's pixel residual, or photographic-operator fields.
HEADS = ("residual", "operators")
