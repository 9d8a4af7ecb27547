// The service worker: keeps every file of the app (listed by the build in precache.json)
// in a cache named after the build's content hash, and answers from it first, so that the
// editor opens and edits offline after the first visit. A new build gets a new cache and
// the old one is dropped.
const PREFIX = "sagim-app-";

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const response = await fetch("precache.json", { cache: "no-store" });
      const { version, files } = await response.json();
      const cache = await caches.open(PREFIX + version);
      await cache.addAll(files);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const response = await fetch("precache.json", { cache: "no-store" }).catch(() => null);
      const current = response && response.ok ? PREFIX + (await response.json()).version : null;
      for (const name of await caches.keys()) {
        if (name.startsWith(PREFIX) && current && name !== current) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(
    (async () => {
      const cached = await caches.match(request, { ignoreSearch: true });
      return cached || fetch(request);
    })(),
  );
});
