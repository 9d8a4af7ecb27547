// The guiding map from E's map and the painted regions.
//
// This is the rule of sagim_tf.guidance.guidance_from_boxes (Python), written again for
// the browser with one emphasized and one de-emphasized region (the union of the "look
// here" and of the "look away" strokes). tests/test_app_browser.py runs both on shared
// vectors. With S = E's map (row-major, width x height, values in [0, 1]):
//   1. ref = max(minReference, mean of the top topFraction of S, mean of S over the
//      look-away region when there is one);
//   2. S1 = S, times lowerFactor over the look-away region;
//   3. plus max(0, raiseTo * ref - mean of S over the look-here region) over that region;
//   4. S2 = S1 / max(1, max S1);
//   5. G = clip(gaussian(S2, sigma), 0, 1), sigma = sigmaFraction * min(width, height),
//      radius ceil(3 sigma) (at least 1), OpenCV's "reflect 101" borders.

export const GUIDANCE_DEFAULTS = Object.freeze({
  raiseTo: 1.0,
  lowerFactor: 0.2,
  sigmaFraction: 0.02,
  topFraction: 0.1,
  minReference: 0.25,
});

// Python's round(): halves go to the even neighbour.
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// Index i mirrored into [0, n) without repeating the edge pixel (OpenCV's BORDER_REFLECT_101).
export function reflect101(i, n) {
  if (n === 1) return 0;
  while (i < 0 || i >= n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
  }
  return i;
}

// Normalised Gaussian taps, radius max(1, ceil(3 sigma)), as OpenCV builds them for a sigma.
export function gaussianTaps(sigma) {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const taps = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let i = 0; i < taps.length; i++) {
    const d = i - radius;
    taps[i] = Math.exp(-(d * d) / (2 * sigma * sigma));
    sum += taps[i];
  }
  for (let i = 0; i < taps.length; i++) taps[i] /= sum;
  return taps;
}

// Separable Gaussian filter of a one-channel map (Float32Array, row-major).
export function gaussianSmooth(map, width, height, sigma) {
  if (!(sigma > 0)) return Float32Array.from(map);
  const taps = gaussianTaps(sigma);
  const radius = (taps.length - 1) / 2;
  const across = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = 0; k < taps.length; k++) {
        acc += taps[k] * map[row + reflect101(x + k - radius, width)];
      }
      across[row + x] = acc;
    }
  }
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = 0; k < taps.length; k++) {
        acc += taps[k] * across[reflect101(y + k - radius, height) * width + x];
      }
      out[y * width + x] = acc;
    }
  }
  return out;
}

function regionMean(map, mask) {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < map.length; i++) {
    if (mask[i]) {
      sum += map[i];
      count++;
    }
  }
  return count ? sum / count : null;
}

// The mean of the largest `fraction` of the values (at least one value).
export function topMean(map, fraction) {
  const top = Math.max(1, roundHalfEven(fraction * map.length));
  const sorted = Float32Array.from(map).sort();
  let sum = 0;
  for (let i = sorted.length - top; i < sorted.length; i++) sum += sorted[i];
  return sum / top;
}

// The guiding map (Float32Array, width x height) from E's map and two masks (Uint8Array,
// 1 inside). An empty mask means "no region of that kind"; both empty is an error.
export function guidanceFromMasks(saliency, emphasize, deemphasize, width, height, options = {}) {
  const o = { ...GUIDANCE_DEFAULTS, ...options };
  const n = width * height;
  if (saliency.length !== n || emphasize.length !== n || deemphasize.length !== n) {
    throw new Error(`guidance: maps of ${width}x${height} expected`);
  }
  const emphasizedMean = regionMean(saliency, emphasize);
  const deemphasizedMean = regionMean(saliency, deemphasize);
  if (emphasizedMean === null && deemphasizedMean === null) {
    throw new Error("Paint where the eye should go (Look here) or what it should leave (Look away) first.");
  }
  let reference = Math.max(o.minReference, topMean(saliency, o.topFraction));
  if (deemphasizedMean !== null) reference = Math.max(reference, deemphasizedMean);
  const lift = emphasizedMean === null ? 0 : Math.max(0, o.raiseTo * reference - emphasizedMean);
  const s1 = new Float32Array(n);
  let peak = -Infinity;
  for (let i = 0; i < n; i++) {
    let v = saliency[i];
    if (deemphasize[i]) v = Math.fround(o.lowerFactor * v);
    if (emphasize[i]) v += lift;
    s1[i] = v;
    if (s1[i] > peak) peak = s1[i];
  }
  const scale = Math.max(1, peak);
  if (scale !== 1) for (let i = 0; i < n; i++) s1[i] = s1[i] / scale;
  const smooth = gaussianSmooth(s1, width, height, o.sigmaFraction * Math.min(width, height));
  for (let i = 0; i < n; i++) smooth[i] = Math.min(1, Math.max(0, smooth[i]));
  return smooth;
}

// (1 - a) * saliency + a * target, clipped to [0, 1]: what a residual-head G receives.
export function blendGuidance(saliency, target, strength) {
  const out = new Float32Array(saliency.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.min(1, Math.max(0, (1 - strength) * saliency[i] + strength * target[i]));
  }
  return out;
}
