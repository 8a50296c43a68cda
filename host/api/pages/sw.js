// The verifier's service worker: keeps the pages and their assets, the
// issuer's keys and the status lists, so that /verify works offline once
// loaded. Keys and status lists come from the network when it answers
// (fresh), from the cache when it does not. POSTs are never cached.
const CACHE = "divoc-verify-v1";
const SHELL = ["/verify", "/pages/verify.js", "/pages/divoc.js", "/pages/pages.css", "/pages/manifest.json"];

self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (e) => {
  e.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function kept(url) {
  return SHELL.includes(url.pathname) || url.pathname === "/.well-known/did.json" || url.pathname.startsWith("/v1/status/");
}

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== self.location.origin || !kept(url)) return;
  e.respondWith(
    fetch(e.request)
      .then((r) => {
        if (r.ok) {
          const copy = r.clone();
          caches.open(CACHE).then((c) => c.put(url.pathname, copy));
        }
        return r;
      })
      .catch(() => caches.match(url.pathname).then((r) => r || Response.error())),
  );
});
