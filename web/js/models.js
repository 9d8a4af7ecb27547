// G and E on the device: LiteRT.js (its WebAssembly CPU runtime) runs the TFLite files.
import { loadLiteRt, loadAndCompile, Tensor, unloadLiteRt } from "@litertjs/core";

let runtime = null;
// Threads the CPU runtime uses; 1 unless the threaded runtime loaded.
let threads = 1;

// Load LiteRT.js's WebAssembly runtime from `wasmDir` (served by the app itself) once.
// Where the page is cross-origin isolated (the app server sends COOP/COEP; the browser
// grants it on https and on localhost) and has several cores, the threaded build runs G on
// up to 4 of them; otherwise, or if that fails, the single-threaded build.
export function loadRuntime(wasmDir) {
  if (!runtime) {
    const cores = Math.min(4, navigator.hardwareConcurrency || 1);
    const tryThreads = self.crossOriginIsolated === true && cores > 1;
    runtime = (async () => {
      if (tryThreads) {
        try {
          const loaded = await loadLiteRt(wasmDir, { threads: true });
          threads = cores;
          return loaded;
        } catch (error) {
          console.warn("threaded LiteRT.js unavailable, using one thread:", error);
          unloadLiteRt();
        }
      }
      return loadLiteRt(wasmDir);
    })().catch((error) => {
      runtime = null;
      throw error;
    });
  }
  return runtime;
}

export function runtimeThreads() {
  return threads;
}

// Fetch a .tflite file and compile it for the CPU; `onBytes(received, total)` reports progress.
export async function loadModel(url, onBytes = null) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: the server answered ${response.status} ${response.statusText}`);
  const total = Number(response.headers.get("Content-Length")) || 0;
  let bytes;
  if (response.body && onBytes) {
    const reader = response.body.getReader();
    const chunks = [];
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      received += value.length;
      onBytes(received, total);
    }
    bytes = new Uint8Array(received);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
  } else {
    bytes = new Uint8Array(await response.arrayBuffer());
  }
  if (bytes.length < 8 || String.fromCharCode(...bytes.subarray(4, 8)) !== "TFL3") {
    throw new Error(`${url}: not a TFLite file`);
  }
  return loadAndCompile(bytes, { accelerator: "wasm", cpuOptions: { numThreads: threads } });
}

// Run a compiled model on named inputs {name: [Float32Array, shape]}; returns the named
// output as a new Float32Array. Every tensor is freed (LiteRT.js memory is manual).
export async function runModel(model, inputs, outputName) {
  const tensors = {};
  try {
    for (const [name, [data, shape]] of Object.entries(inputs)) tensors[name] = new Tensor(data, shape);
    const outputs = await model.run(tensors);
    try {
      let tensor = outputs[outputName];
      if (!tensor) throw new Error(`the model has no output "${outputName}" (it has ${Object.keys(outputs).join(", ")})`);
      if (tensor.accelerator !== "wasm") tensor = await tensor.moveTo("wasm");
      return Float32Array.from(tensor.toTypedArray());
    } finally {
      for (const tensor of Object.values(outputs)) if (!tensor.deleted) tensor.delete();
    }
  } finally {
    for (const tensor of Object.values(tensors)) if (!tensor.deleted) tensor.delete();
  }
}
