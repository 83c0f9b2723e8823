// Service worker: makes earshot installable and usable offline.
// - install: precaches the app shell and the WASM listed in precache.json (written by
//   scripts/build-site.mjs).
// - fetch (same-origin GETs only): network first, so a running server always gives the newest
//   files (unchanged files cost a 304), and the cached copy when the network fails. The model
//   and the index files (and format 2 block ranges) are cached by the recognizer's downloader
//   (cache "earshot-data-v1") after their SHA-256 was checked; it reads them from there first,
//   and this worker serves whole files from there when offline.
// Nothing is ever sent anywhere: this worker only answers GETs for our own origin.

const SHELL_CACHE = 'earshot-shell-v1';

self.addEventListener('install', (event) => {
    event.waitUntil((async () => {
        const response = await fetch('./precache.json', { cache: 'no-cache' });
        if (!response.ok) throw new Error(`precache.json: HTTP ${response.status}`);
        const { files } = await response.json();
        const cache = await caches.open(SHELL_CACHE);
        await cache.addAll(files.map((file) => new Request(file, { cache: 'no-cache' })));
        await self.skipWaiting();
    })());
});

self.addEventListener('activate', (event) => {
    event.waitUntil((async () => {
        for (const name of await caches.keys()) {
            if (name.startsWith('earshot-shell-') && name !== SHELL_CACHE) await caches.delete(name);
        }
        await self.clients.claim();
    })());
});

/** @param {Request} request */
async function networkFirst(request) {
    try {
        const response = await fetch(request);
        const url = new URL(request.url);
        // Keep the shell fresh; data files are cached (verified) by the downloader itself.
        if (response.ok && response.status === 200 && !url.pathname.includes('/index/') && !url.pathname.endsWith('.emod')) {
            const cache = await caches.open(SHELL_CACHE);
            await cache.put(request, response.clone());
        }
        return response;
    } catch (error) {
        const cached = await caches.match(request, { ignoreVary: true })
            ?? (request.mode === 'navigate' ? await caches.match('./index.html') ?? await caches.match('./') : undefined);
        if (cached) return cached;
        throw error;
    }
}

self.addEventListener('fetch', (event) => {
    const request = event.request;
    if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
    event.respondWith(networkFirst(request));
});
