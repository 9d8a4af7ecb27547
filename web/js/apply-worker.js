// A worker that applies the operator head's coefficients to one band of rows of a photo
// (see parallel.js); the arithmetic is operators.js's, so every band is what one thread
// would have made.
import { applyCoefficients } from "./operators.js";

self.onmessage = async (event) => {
  const { id, src, coef, gridWidth, gridHeight, rows, options } = event.data;
  try {
    const dst = { width: src.width, height: rows.stop - rows.start, kind: "rgba8", data: new Uint8ClampedArray(src.width * (rows.stop - rows.start) * 4) };
    await applyCoefficients(src, coef, gridWidth, gridHeight, dst, { ...options, rows, yieldMs: Infinity });
    self.postMessage({ id, data: dst.data }, [dst.data.buffer]);
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message ? error.message : error) });
  }
};
