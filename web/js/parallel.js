// The operator head's full-resolution apply on several cores: the photo is cut into bands
// of rows, each band (with 3 rows of context above and below, which the detail blur needs
// where the photo is the grid's size) goes to a worker (apply-worker.js) with the working
// copy G saw, and the bands come back in place. Where workers cannot be
// made, the page's own thread does the work (operators.js), with the same result.
import { applyCoefficients } from "./operators.js";

const HALO = 3;
let pool = null;
let nextId = 0;

function workers() {
  if (pool === null) {
    pool = [];
    const count = Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2)));
    try {
      for (let i = 0; i < count; i++) pool.push(new Worker(new URL("./apply-worker.js", import.meta.url), { type: "module" }));
    } catch (error) {
      for (const worker of pool) worker.terminate();
      pool = [];
    }
  }
  return pool;
}

function runBand(worker, message) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    const onMessage = (event) => {
      if (event.data.id !== id) return;
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
      if (event.data.error) reject(new Error(event.data.error));
      else resolve(event.data.data);
    };
    const onError = (event) => {
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
      reject(new Error(event.message || "a worker failed"));
    };
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
    worker.postMessage({ ...message, id }, [message.src.data.buffer]);
  });
}

// applyCoefficients for an rgba8 photo into an rgba8 `dst`, split over the workers.
export async function applyCoefficientsParallel(src, coef, gridWidth, gridHeight, dst, options = {}) {
  const team = src.kind === "rgba8" && dst.kind === "rgba8" && src.height >= 64 ? workers() : [];
  if (team.length < 2) return applyCoefficients(src, coef, gridWidth, gridHeight, dst, options);
  const { onProgress = null, ...rest } = options;
  const W = src.width;
  const H = src.height;
  const bands = team.length;
  let finished = 0;
  const jobs = team.map((worker, b) => {
    const start = Math.floor((b * H) / bands);
    const stop = Math.floor(((b + 1) * H) / bands);
    const srcStart = Math.max(0, start - HALO);
    const srcStop = Math.min(H, stop + HALO);
    const slice = src.data.slice(srcStart * W * 4, srcStop * W * 4);
    const message = {
      src: { width: W, height: srcStop - srcStart, kind: "rgba8", data: slice },
      coef,
      gridWidth,
      gridHeight,
      rows: { start, stop, height: H, srcStart },
      options: { luma: rest.luma, detailSize: rest.detailSize, detailSigma: rest.detailSigma, work: rest.work },
    };
    return runBand(worker, message).then((data) => {
      dst.data.set(data, start * W * 4);
      finished += 1;
      if (onProgress) onProgress(finished / bands);
    });
  });
  await Promise.all(jobs);
  return dst;
}
