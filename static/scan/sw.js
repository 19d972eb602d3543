// The scan page's service worker, served at /lieu/sw.js after two lines the
// server writes: `const VERSION = "…"` (a digest of every file below, so a new
// build installs a new worker) and `const ASSETS = […]` (their URLs).
// Static files come from the cache, so the page opens without network; the
// page itself is fetched from the network first and kept for offline use;
// the API is never cached.

const CACHE = `passnum-scan-${VERSION}`;
const PAGE = "/lieu/";

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(ASSETS))
      .then(() => self.skipWaiting()),
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
    // Only the scan page itself, and only a real page (not a redirect to the login).
    if (response.ok && !response.redirected) await cache.put(PAGE, response.clone());
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
