// Resampling between the photo, G's working size and back.
//
// Images are plain objects {width, height, data, kind}: kind "rgba8" holds canvas pixels
// (Uint8ClampedArray, 4 per pixel, read as k / 255), kind "rgb32" floats in [0, 1]
// (Float32Array, 3 per pixel).

export function makeImage(width, height, kind) {
  const data = kind === "rgba8" ? new Uint8ClampedArray(width * height * 4) : new Float32Array(width * height * 3);
  if (kind === "rgba8") data.fill(255);
  return { width, height, data, kind };
}

// Channel c of pixel i as a float in [0, 1].
export function readPixel(image, i, c) {
  return image.kind === "rgba8" ? image.data[i * 4 + c] / 255 : image.data[i * 3 + c];
}

// OpenCV's INTER_LINEAR taps along one axis (half-pixel centres, edges clamped): for each
// output index the two source indices and the second one's weight.
export function linearTaps(outLen, inLen) {
  const first = new Int32Array(outLen);
  const second = new Int32Array(outLen);
  const weight = new Float32Array(outLen);
  const scale = inLen / outLen;
  for (let i = 0; i < outLen; i++) {
    let pos = (i + 0.5) * scale - 0.5;
    pos = Math.min(Math.max(pos, 0), inLen - 1);
    const f = Math.floor(pos);
    first[i] = f;
    second[i] = Math.min(f + 1, inLen - 1);
    weight[i] = pos - f;
  }
  return { first, second, weight };
}

// Area-averaging weights for shrinking inLen samples to outLen (outLen <= inLen): output i
// averages the source interval [i * s, (i + 1) * s), s = inLen / outLen, partial pixels
// weighted by their overlap (OpenCV's INTER_AREA for a shrink).
function areaTaps(outLen, inLen) {
  const scale = inLen / outLen;
  const taps = [];
  for (let i = 0; i < outLen; i++) {
    const lo = i * scale;
    const hi = (i + 1) * scale;
    const start = Math.floor(lo);
    const stop = Math.min(inLen, Math.ceil(hi));
    const weights = new Float32Array(stop - start);
    for (let j = start; j < stop; j++) {
      weights[j - start] = (Math.min(hi, j + 1) - Math.max(lo, j)) / scale;
    }
    taps.push({ start, weights });
  }
  return taps;
}

function resampleTaps(outLen, inLen) {
  if (outLen <= inLen) return areaTaps(outLen, inLen);
  const { first, second, weight } = linearTaps(outLen, inLen);
  const taps = [];
  for (let i = 0; i < outLen; i++) {
    const w = weight[i];
    if (second[i] === first[i]) taps.push({ start: first[i], weights: Float32Array.of(1) });
    else taps.push({ start: first[i], weights: Float32Array.of(1 - w, w) });
  }
  return taps;
}

// The photo at (width, height) as rgb32: area averaging to shrink, bilinear to enlarge,
// across first and then down.
export function resizeToFloat(image, width, height) {
  const across = resampleTaps(width, image.width);
  const down = resampleTaps(height, image.height);
  const tmp = new Float32Array(image.height * width * 3);
  const src = image.data;
  const step = image.kind === "rgba8" ? 4 : 3;
  const unit = image.kind === "rgba8" ? 1 / 255 : 1;
  for (let y = 0; y < image.height; y++) {
    const rowIn = y * image.width;
    const rowOut = y * width * 3;
    for (let x = 0; x < width; x++) {
      const { start, weights } = across[x];
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < weights.length; k++) {
        const p = (rowIn + start + k) * step;
        const w = weights[k];
        r += w * src[p];
        g += w * src[p + 1];
        b += w * src[p + 2];
      }
      tmp[rowOut + x * 3] = r * unit;
      tmp[rowOut + x * 3 + 1] = g * unit;
      tmp[rowOut + x * 3 + 2] = b * unit;
    }
  }
  const out = makeImage(width, height, "rgb32");
  const dst = out.data;
  for (let y = 0; y < height; y++) {
    const { start, weights } = down[y];
    for (let i = 0; i < width * 3; i++) {
      let acc = 0;
      for (let k = 0; k < weights.length; k++) acc += weights[k] * tmp[(start + k) * width * 3 + i];
      dst[y * width * 3 + i] = Math.min(1, Math.max(0, acc));
    }
  }
  return out;
}

// A float in [0, 1] as the byte Python's to_uint8 writes: floor(255 x + 0.5).
export function toByte(v) {
  return Math.floor(Math.min(1, Math.max(0, v)) * 255 + 0.5);
}
