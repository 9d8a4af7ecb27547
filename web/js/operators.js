// The operator head's edit, applied by the page at any resolution.
//
// The same arithmetic as sagim_tf.layers.photo_operators (coefficients, then
// apply_coefficients) and sagim_tf.models.generate.apply_fields: the coefficients are
// computed on G's field grid, interpolated bilinearly to the photo (OpenCV's INTER_LINEAR,
// half-pixel centres), then per pixel: white balance and exposure gains (brightening rolls
// the highlights off: g x / (1 + max(m - 1, 0) x), m the gains' luma), the contrast S-curve
// x + k x (1 - x) (2x - 1), tone, saturation, and local detail; the result is clipped to
// [0, 1] once, at the end.
//
// Local detail is x + d (x - blur(x)) with a 7-tap Gaussian (sigma 1.5 pixels, reflect-101
// borders) of the image G saw. At the grid's own size it is applied as it is (strips of
// rows with a 3-row halo for the blur). At any other size, as apply_fields does, the
// detail change d (x - blur(x)) is made on the working copy G saw (`options.work`) and
// interpolated to the photo like the coefficients, so a 12-megapixel photo gets the
// detail G judged, and never needs a float copy or a full-size blur.
import { linearTaps, toByte } from "./imaging.js";
import { reflect101 } from "./guidance.js";

export const NUM_FIELDS = 7;
const HALO = 3; // rows of context for the detail blur (7 taps)

// Raw fields (Float32Array, count x 7) -> coefficients (count x 7) at `strength`:
// settings are strength * range * tanh(field), which is what Python's scale_fields gives.
export function coefficientsFromFields(fields, ranges, luma, strength = 1) {
  const count = fields.length / NUM_FIELDS;
  const coef = new Float32Array(fields.length);
  for (let i = 0; i < count; i++) {
    const f = i * NUM_FIELDS;
    const p = (k) => strength * ranges[k] * Math.tanh(fields[f + k]);
    const temperature = p(0);
    const tint = p(1);
    const ev = p(2);
    let gr = Math.exp(temperature);
    let gg = Math.exp(-tint);
    let gb = Math.exp(-temperature);
    const neutral = 1 + (luma[0] * gr + luma[1] * gg + luma[2] * gb) - (luma[0] + luma[1] + luma[2]);
    const exposure = Math.pow(2, ev);
    gr = (gr / neutral) * exposure;
    gg = (gg / neutral) * exposure;
    gb = (gb / neutral) * exposure;
    coef[f] = gr;
    coef[f + 1] = gg;
    coef[f + 2] = gb;
    coef[f + 3] = 2 * (Math.pow(2, p(3)) - 1);
    coef[f + 4] = p(4);
    coef[f + 5] = Math.pow(2, p(5)) - 1;
    coef[f + 6] = p(6);
  }
  return coef;
}

// Normalised Gaussian taps of odd `size` (sagim_tf.layers.gaussian_blur.gaussian_kernel_1d).
export function detailTaps(size, sigma) {
  const taps = new Float32Array(size);
  let sum = 0;
  for (let i = 0; i < size; i++) {
    const r = i - (size - 1) / 2;
    taps[i] = Math.exp(-0.5 * (r / sigma) * (r / sigma));
    sum += taps[i];
  }
  for (let i = 0; i < size; i++) taps[i] /= sum;
  return taps;
}

// A grid of `P` channels (gridHeight x gridWidth x P) interpolated across to the photo's
// width W once (`cols` = linearTaps(W, gridWidth)), laid out as rows of planes:
// planes[(gridRow * P + k) * W + x]. The rows are interpolated later, strip by strip.
function acrossPlanes(grid, P, gridWidth, gridHeight, cols, W) {
  const planes = new Float32Array(gridHeight * P * W);
  for (let r = 0; r < gridHeight; r++) {
    for (let k = 0; k < P; k++) {
      const base = (r * P + k) * W;
      for (let x = 0; x < W; x++) {
        const a = grid[(r * gridWidth + cols.first[x]) * P + k];
        const b = grid[(r * gridWidth + cols.second[x]) * P + k];
        const t = cols.weight[x];
        planes[base + x] = t === 0 ? a : a * (1 - t) + b * t;
      }
    }
  }
  return planes;
}

const nextFrame = () => new Promise((resolve) => setTimeout(resolve, 0));

// Apply coefficients on a (gridWidth x gridHeight) grid to `src`, writing `dst` (the same
// size; rgba8 or rgb32, see imaging.js). `options.onProgress(fraction)` is called between
// strips, and the event loop gets a turn every `options.yieldMs` ms so that the page stays
// responsive; returns a promise.
//
// A band of the photo (for a worker): with `options.rows = {start, stop, height, srcStart}`
// only rows [start, stop) of a photo `height` rows high are made; `src` then holds the
// photo's rows from `srcStart` (at least 3 above `start` and below `stop`, where the
// photo has them) and `dst` the rows [start, stop).
export async function applyCoefficients(src, coef, gridWidth, gridHeight, dst, options = {}) {
  const { luma, detailSize = 7, detailSigma = 1.5, stripRows = 64, onProgress = null, yieldMs = 50 } = options;
  const W = src.width;
  const band = options.rows || { start: 0, stop: src.height, height: src.height, srcStart: 0 };
  const H = band.height;
  if (detailSize !== 7) throw new Error(`the detail blur has 7 taps here, got ${detailSize}`);
  const taps = detailTaps(detailSize, detailSigma);
  if (gridWidth !== W || gridHeight !== H) {
    if (!options.work) throw new Error("applyCoefficients: a photo of another size than the grid needs options.work");
    const grid = withDetailChange(options.work, coef, gridWidth, gridHeight, luma, taps);
    return applyInterpolated(src, grid, gridWidth, gridHeight, dst, band, { luma, stripRows, onProgress, yieldMs });
  }
  const [k0, k1, k2, k3] = taps;
  const cols = linearTaps(W, gridWidth);
  const rows = linearTaps(H, gridHeight);
  const planes = acrossPlanes(coef, NUM_FIELDS, gridWidth, gridHeight, cols, W);
  const maxRows = Math.min(H, stripRows + 2 * HALO);
  const X = new Float32Array(maxRows * 3 * W); // operators 1-4, [row][channel][x]
  const T = new Float32Array(maxRows * 3 * W); // X blurred across
  const D = new Float32Array(maxRows * W); // detail amounts
  const C = new Float32Array(NUM_FIELDS * W); // one row of coefficients
  const [l0, l1, l2] = luma;
  const inBytes = src.kind === "rgba8";
  const outBytes = dst.kind === "rgba8";
  const s = src.data;
  const o = dst.data;
  let last = performance.now();
  for (let r0 = band.start; r0 < band.stop; r0 += stripRows) {
    const r1 = Math.min(band.stop, r0 + stripRows);
    const a0 = Math.max(0, r0 - HALO);
    const a1 = Math.min(H, r1 + HALO);
    for (let y = a0; y < a1; y++) {
      const j = y - a0;
      const t = rows.weight[y];
      const p0 = rows.first[y] * NUM_FIELDS * W;
      const p1 = rows.second[y] * NUM_FIELDS * W;
      for (let k = 0; k < NUM_FIELDS; k++) {
        const b0 = p0 + k * W;
        const b1 = p1 + k * W;
        const dstK = k * W;
        if (t === 0) for (let x = 0; x < W; x++) C[dstK + x] = planes[b0 + x];
        else for (let x = 0; x < W; x++) C[dstK + x] = planes[b0 + x] * (1 - t) + planes[b1 + x] * t;
      }
      for (let x = 0; x < W; x++) {
        const i = (y - band.srcStart) * W + x;
        let r;
        let g;
        let b;
        if (inBytes) {
          r = s[i * 4] / 255;
          g = s[i * 4 + 1] / 255;
          b = s[i * 4 + 2] / 255;
        } else {
          r = s[i * 3];
          g = s[i * 3 + 1];
          b = s[i * 3 + 2];
        }
        // white balance and exposure, highlights rolled off
        const gr = C[x];
        const gg = C[W + x];
        const gb = C[2 * W + x];
        const ro = Math.max(0, l0 * gr + l1 * gg + l2 * gb - 1);
        r = (gr * r) / (1 + ro * r);
        g = (gg * g) / (1 + ro * g);
        b = (gb * b) / (1 + ro * b);
        // contrast S-curve
        const ct = C[3 * W + x];
        r += ct * r * (1 - r) * (2 * r - 1);
        g += ct * g * (1 - g) * (2 * g - 1);
        b += ct * b * (1 - b) * (2 * b - 1);
        // tone
        const tone = C[4 * W + x];
        r += tone * r * (1 - r);
        g += tone * g * (1 - g);
        b += tone * b * (1 - b);
        // saturation around Rec. 601 luma
        const sat = C[5 * W + x];
        const Y = l0 * r + l1 * g + l2 * b;
        r += (r - Y) * sat;
        g += (g - Y) * sat;
        b += (b - Y) * sat;
        const base = j * 3 * W + x;
        X[base] = r;
        X[base + W] = g;
        X[base + 2 * W] = b;
        D[j * W + x] = C[6 * W + x];
      }
      // blur across, reflected edges; the taps are symmetric (k0 = k6, k1 = k5, k2 = k4)
      for (let ch = 0; ch < 3; ch++) {
        const base = (j * 3 + ch) * W;
        for (let x = 0; x < W; x++) {
          if (x >= 3 && x < W - 3) {
            const q = base + x;
            T[q] = k0 * (X[q - 3] + X[q + 3]) + k1 * (X[q - 2] + X[q + 2]) + k2 * (X[q - 1] + X[q + 1]) + k3 * X[q];
          } else {
            let acc = 0;
            for (let k = 0; k < 7; k++) acc += taps[k] * X[base + reflect101(x + k - 3, W)];
            T[base + x] = acc;
          }
        }
      }
    }
    // blur down, detail, clip, write
    for (let y = r0; y < r1; y++) {
      const j = y - a0;
      const d = j * W;
      const out0 = (y - band.start) * W;
      for (let ch = 0; ch < 3; ch++) {
        const base = (j * 3 + ch) * W;
        const u0 = ((reflect101(y - 3, H) - a0) * 3 + ch) * W;
        const u1 = ((reflect101(y - 2, H) - a0) * 3 + ch) * W;
        const u2 = ((reflect101(y - 1, H) - a0) * 3 + ch) * W;
        const u4 = ((reflect101(y + 1, H) - a0) * 3 + ch) * W;
        const u5 = ((reflect101(y + 2, H) - a0) * 3 + ch) * W;
        const u6 = ((reflect101(y + 3, H) - a0) * 3 + ch) * W;
        for (let x = 0; x < W; x++) {
          const blur = k0 * (T[u0 + x] + T[u6 + x]) + k1 * (T[u1 + x] + T[u5 + x]) + k2 * (T[u2 + x] + T[u4 + x]) + k3 * T[base + x];
          const v = X[base + x];
          let out = v + D[d + x] * (v - blur);
          out = out < 0 ? 0 : out > 1 ? 1 : out;
          if (outBytes) o[(out0 + x) * 4 + ch] = (out * 255 + 0.5) | 0; // floor(255 x + 0.5)
          else o[(out0 + x) * 3 + ch] = out;
        }
      }
      if (outBytes) for (let x = 0; x < W; x++) o[(out0 + x) * 4 + 3] = 255;
    }
    if (performance.now() - last > yieldMs) {
      if (onProgress) onProgress((r1 - band.start) / (band.stop - band.start));
      await nextFrame();
      last = performance.now();
    }
  }
  if (onProgress) onProgress(1);
  return dst;
}

// The first four operators (gains, contrast, tone, saturation) on one pixel, in place in
// `px` (a Float64Array of 3).
function firstFour(px, g0, g1, g2, contrast, tone, sat, l0, l1, l2) {
  const ro = Math.max(0, l0 * g0 + l1 * g1 + l2 * g2 - 1);
  let r = (g0 * px[0]) / (1 + ro * px[0]);
  let g = (g1 * px[1]) / (1 + ro * px[1]);
  let b = (g2 * px[2]) / (1 + ro * px[2]);
  r += contrast * r * (1 - r) * (2 * r - 1);
  g += contrast * g * (1 - g) * (2 * g - 1);
  b += contrast * b * (1 - b) * (2 * b - 1);
  r += tone * r * (1 - r);
  g += tone * g * (1 - g);
  b += tone * b * (1 - b);
  const Y = l0 * r + l1 * g + l2 * b;
  px[0] = r + (r - Y) * sat;
  px[1] = g + (g - Y) * sat;
  px[2] = b + (b - Y) * sat;
}

// Coefficients with the detail change made at the grid's size: (gridHeight x gridWidth x 9)
// = gains (3), contrast, tone, saturation, then d (x - blur(x)) per channel, x being the
// working copy `work` (rgb32, the grid's size) after the first four operators.
export function withDetailChange(work, coef, gridWidth, gridHeight, luma, taps) {
  if (work.width !== gridWidth || work.height !== gridHeight) {
    throw new Error(`the working copy is ${work.width}x${work.height}, the grid ${gridWidth}x${gridHeight}`);
  }
  const n = gridWidth * gridHeight;
  const x = new Float32Array(n * 3);
  const px = new Float64Array(3);
  const [l0, l1, l2] = luma;
  for (let i = 0; i < n; i++) {
    const c = i * NUM_FIELDS;
    px[0] = work.data[i * 3];
    px[1] = work.data[i * 3 + 1];
    px[2] = work.data[i * 3 + 2];
    firstFour(px, coef[c], coef[c + 1], coef[c + 2], coef[c + 3], coef[c + 4], coef[c + 5], l0, l1, l2);
    x[i * 3] = px[0];
    x[i * 3 + 1] = px[1];
    x[i * 3 + 2] = px[2];
  }
  const radius = (taps.length - 1) / 2;
  const across = new Float32Array(n * 3);
  for (let y = 0; y < gridHeight; y++) {
    for (let xx = 0; xx < gridWidth; xx++) {
      for (let ch = 0; ch < 3; ch++) {
        let acc = 0;
        for (let k = 0; k < taps.length; k++) acc += taps[k] * x[(y * gridWidth + reflect101(xx + k - radius, gridWidth)) * 3 + ch];
        across[(y * gridWidth + xx) * 3 + ch] = acc;
      }
    }
  }
  const grid = new Float32Array(n * 9);
  for (let y = 0; y < gridHeight; y++) {
    for (let xx = 0; xx < gridWidth; xx++) {
      const i = y * gridWidth + xx;
      for (let k = 0; k < 6; k++) grid[i * 9 + k] = coef[i * NUM_FIELDS + k];
      for (let ch = 0; ch < 3; ch++) {
        let blur = 0;
        for (let k = 0; k < taps.length; k++) blur += taps[k] * across[(reflect101(y + k - radius, gridHeight) * gridWidth + xx) * 3 + ch];
        grid[i * 9 + 6 + ch] = coef[i * NUM_FIELDS + 6] * (x[i * 3 + ch] - blur);
      }
    }
  }
  return grid;
}

// Apply a 9-channel grid (withDetailChange) interpolated to the photo: the first four
// operators, plus the interpolated detail change, clipped. No blur at the photo's size.
async function applyInterpolated(src, grid, gridWidth, gridHeight, dst, band, options) {
  const { luma, stripRows, onProgress, yieldMs } = options;
  const W = src.width;
  const H = band.height;
  const P = 9;
  const cols = linearTaps(W, gridWidth);
  const rows = linearTaps(H, gridHeight);
  const planes = acrossPlanes(grid, P, gridWidth, gridHeight, cols, W);
  const C = new Float32Array(P * W);
  const [l0, l1, l2] = luma;
  const inBytes = src.kind === "rgba8";
  const outBytes = dst.kind === "rgba8";
  const s = src.data;
  const o = dst.data;
  let last = performance.now();
  for (let y = band.start; y < band.stop; y++) {
    const t = rows.weight[y];
    const p0 = rows.first[y] * P * W;
    const p1 = rows.second[y] * P * W;
    if (t === 0) C.set(planes.subarray(p0, p0 + P * W));
    else for (let q = 0; q < P * W; q++) C[q] = planes[p0 + q] * (1 - t) + planes[p1 + q] * t;
    const rowIn = (y - band.srcStart) * W;
    const rowOut = (y - band.start) * W;
    for (let x = 0; x < W; x++) {
      const i = rowIn + x;
      let r;
      let g;
      let b;
      if (inBytes) {
        r = s[i * 4] / 255;
        g = s[i * 4 + 1] / 255;
        b = s[i * 4 + 2] / 255;
      } else {
        r = s[i * 3];
        g = s[i * 3 + 1];
        b = s[i * 3 + 2];
      }
      const gr = C[x];
      const gg = C[W + x];
      const gb = C[2 * W + x];
      const ro = Math.max(0, l0 * gr + l1 * gg + l2 * gb - 1);
      r = (gr * r) / (1 + ro * r);
      g = (gg * g) / (1 + ro * g);
      b = (gb * b) / (1 + ro * b);
      const ct = C[3 * W + x];
      r += ct * r * (1 - r) * (2 * r - 1);
      g += ct * g * (1 - g) * (2 * g - 1);
      b += ct * b * (1 - b) * (2 * b - 1);
      const tone = C[4 * W + x];
      r += tone * r * (1 - r);
      g += tone * g * (1 - g);
      b += tone * b * (1 - b);
      const sat = C[5 * W + x];
      const Y = l0 * r + l1 * g + l2 * b;
      r += (r - Y) * sat + C[6 * W + x];
      g += (g - Y) * sat + C[7 * W + x];
      b += (b - Y) * sat + C[8 * W + x];
      r = r < 0 ? 0 : r > 1 ? 1 : r;
      g = g < 0 ? 0 : g > 1 ? 1 : g;
      b = b < 0 ? 0 : b > 1 ? 1 : b;
      const j = rowOut + x;
      if (outBytes) {
        o[j * 4] = (r * 255 + 0.5) | 0; // floor(255 x + 0.5)
        o[j * 4 + 1] = (g * 255 + 0.5) | 0;
        o[j * 4 + 2] = (b * 255 + 0.5) | 0;
        o[j * 4 + 3] = 255;
      } else {
        o[j * 3] = r;
        o[j * 3 + 1] = g;
        o[j * 3 + 2] = b;
      }
    }
    if ((y - band.start) % stripRows === 0 && performance.now() - last > yieldMs) {
      if (onProgress) onProgress((y + 1 - band.start) / (band.stop - band.start));
      await nextFrame();
      last = performance.now();
    }
  }
  if (onProgress) onProgress(1);
  return dst;
}

// The residual head's edit at any size: src + bilinear(residual), clipped (the residual is
// G's change at the working size, rgb32-like Float32Array gridWidth x gridHeight x 3).
export async function applyResidual(src, residual, gridWidth, gridHeight, dst, options = {}) {
  const { onProgress = null, yieldMs = 50 } = options;
  const W = src.width;
  const H = src.height;
  const cols = linearTaps(W, gridWidth);
  const rows = linearTaps(H, gridHeight);
  const across = new Float32Array(gridHeight * W * 3);
  for (let r = 0; r < gridHeight; r++) {
    for (let x = 0; x < W; x++) {
      const t = cols.weight[x];
      for (let ch = 0; ch < 3; ch++) {
        const a = residual[(r * gridWidth + cols.first[x]) * 3 + ch];
        const b = residual[(r * gridWidth + cols.second[x]) * 3 + ch];
        across[(r * W + x) * 3 + ch] = t === 0 ? a : a * (1 - t) + b * t;
      }
    }
  }
  const inBytes = src.kind === "rgba8";
  const outBytes = dst.kind === "rgba8";
  let last = performance.now();
  for (let y = 0; y < H; y++) {
    const t = rows.weight[y];
    const q0 = rows.first[y] * W * 3;
    const q1 = rows.second[y] * W * 3;
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      for (let ch = 0; ch < 3; ch++) {
        const a = across[q0 + x * 3 + ch];
        const d = t === 0 ? a : a * (1 - t) + across[q1 + x * 3 + ch] * t;
        const v = (inBytes ? src.data[i * 4 + ch] / 255 : src.data[i * 3 + ch]) + d;
        if (outBytes) dst.data[i * 4 + ch] = toByte(v);
        else dst.data[i * 3 + ch] = Math.min(1, Math.max(0, v));
      }
      if (outBytes) dst.data[i * 4 + 3] = 255;
    }
    if (performance.now() - last > yieldMs) {
      if (onProgress) onProgress((y + 1) / H);
      await nextFrame();
      last = performance.now();
    }
  }
  if (onProgress) onProgress(1);
  return dst;
}
