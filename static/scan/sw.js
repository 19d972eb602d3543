// The scan page's service worker, served at /lieu/sw.js after two lines the
// server writes: `const VERSION = "…"` (a digest of every file below, so a new
// build installs a new worker) and `const ASSETS = […]` (their URLs).
// Static files come from the cache, so the page opens without network; the
// page itself is fetched from the network first and kept for offline use;
// the API is never cached.

const CACHE = `passnum-scan-${VERSION}`;
const PAGE = "/lieu/";

/** Keeps the scan page itself, unless the answer is not it (a login page after a redirect). */
async function keepPage(cache, response) {
  if (response.ok && !response.redirected) await cache.put(PAGE, response);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(ASSETS);
      // The page that registered this worker, so the next visit opens offline.
      await keepPage(cache, await fetch(PAGE)).catch(() => {});
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("passnum-scan-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

async function page(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    await keepPage(cache, response.clone());
    return response;
  } catch (error) {
    return (await cache.match(PAGE)) ?? Promise.reject(error);
  }
}

async function asset(request) {
  const cached = await caches.match(request, { ignoreSearch: true, cacheName: CACHE });
  return cached ?? fetch(request);
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (event.request.mode === "navigate" && url.pathname === PAGE) event.respondWith(page(event.request));
  else if (url.pathname.startsWith("/static/")) event.respondWith(asset(event.request));
});
