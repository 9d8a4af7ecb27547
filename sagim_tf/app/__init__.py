"""The phone editor: a static web app that runs G and E on the device with LiteRT.js.

Modules:

* :mod:`~sagim_tf.app.estimator_tflite` -- E as a fixed-size TFLite file (its antialiased
  resizes as matrix products, since TFLite has no kernel for them);
* :mod:`~sagim_tf.app.build` -- ``sagim app build``: the page (``web/``), LiteRT.js and its
  WebAssembly runtime, G and E as TFLite files at the working size, and ``app.json``;
* :mod:`~sagim_tf.app.serve` -- ``sagim app serve``: a static server for that folder,
  loopback by default.

The page itself (``web/``: HTML, CSS and ES modules) implements the guidance rule of
:func:`sagim_tf.guidance.guidance_from_boxes` and the operators of
:mod:`sagim_tf.layers.photo_operators` in JavaScript; tests/test_app_browser.py checks both
against the Python ones in a real browser. See docs/app.md.
"""
