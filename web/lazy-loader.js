// The byte ranges of a `lazy` index (docs/SCALE.md, "Lazy answers"): the pair pages, units,
// directory pages and song blocks a lazy query names (Engine.lazyFetches(),
// core/lazy_index.h), fetched with HTTP Range requests and kept in the Cache API under a byte
// budget, least recently used out first, so that songs heard before are recognized again
// without the network. The core checks every range against the index's hashes before it keeps
// it (Engine.lazyProvide()): a range is cached only once the core accepted it, and a cached
// range it refuses is dropped. The ranges the recognizer needs on every query (the background
// blocks and their directory pages) are pinned: kept whatever the budget. Runs in the Worker
// (and in node for tests, with a Cache API stand-in).
//
// The list of cached ranges, most recently used last, is itself a cache entry
// (`<manifest URL>?lazy-ranges`), written after each look: a later visit starts from it, and
// ranges of this index that it does not list (left by a visit that ended mid-look) are deleted.

import { EarshotError, fetchWithRetry } from './fetch-util.js';

/** Default byte budget of the cached ranges (pinned ones not counted). */
export const DEFAULT_LAZY_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * @typedef {object} LazyRange  what Engine.lazyFetches() names
 * @property {'page' | 'unit' | 'directory' | 'block'} kind
 * @property {number} id
 * @property {string} file    a file of the index (relative to the manifest)
 * @property {number} offset
 * @property {number} bytes
 */

export class LazyRangeStore {
    /**
     * @param {object} options
     * @param {import('./index-loader.js').IndexDownloader} options.downloader  its Cache API cache,
     *        retry options, manifest URL and bytesDownloaded count are shared
     * @param {Record<string, number>} options.fileBytes  the size of every file a range may be in
     * @param {number} [options.budgetBytes]  default DEFAULT_LAZY_CACHE_BYTES
     */
    constructor({ downloader, fileBytes, budgetBytes = DEFAULT_LAZY_CACHE_BYTES }) {
        if (!(budgetBytes >= 0)) throw new EarshotError('config', `lazyCacheMB must be a number >= 0 (got ${budgetBytes / (1024 * 1024)})`);
        this.downloader = downloader;
        this.fileBytes = fileBytes;
        this.budgetBytes = budgetBytes;
        this.listKey = `${downloader.manifestUrl}?lazy-ranges`;
        /** key -> {bytes, pinned}, least recently used first (Map order) */
        this.entries = new Map();
        this.unpinnedBytes = 0;
        this.pinnedBytes = 0;
        /** ranges asked of the network and bytes they brought (this store's share of bytesDownloaded) */
        this.requests = 0;
        this.bytesFetched = 0;
        this.dirty = false;
    }

    /**
     * Cache key of a range: its file's URL with the (inclusive) byte range as the query, named
     * apart from the full index's cached block ranges (`?bytes=`), which this store never touches.
     * @param {LazyRange} r
     */
    key(r) {
        const url = new URL(r.file, this.downloader.manifestUrl).href;
        return `${url}?lazy-bytes=${r.offset}-${r.offset + r.bytes - 1}`;
    }

    /** Reads the list of cached ranges and deletes this index's ranges it does not list. */
    async open() {
        const cache = await this.downloader.openCache();
        if (!cache) return;
        const list = await this.downloader.cached(this.listKey);
        if (list) {
            try {
                for (const [key, bytes, pinned] of JSON.parse(new TextDecoder().decode(list))) {
                    if (typeof key === 'string' && Number.isSafeInteger(bytes) && bytes > 0) this.add(key, bytes, Boolean(pinned));
                }
            } catch {
                this.entries.clear();  // unreadable: start empty (the ranges are re-fetched)
                this.unpinnedBytes = 0;
                this.pinnedBytes = 0;
            }
        }
        const base = new URL('.', this.downloader.manifestUrl).href;
        for (const request of (await cache.keys?.()) ?? []) {
            const url = typeof request === 'string' ? request : request.url;
            if (url.startsWith(base) && /\?lazy-bytes=\d+-\d+$/.test(url) && !this.entries.has(url)) await cache.delete?.(url);
        }
    }

    /** @param {string} key @param {number} bytes @param {boolean} pinned */
    add(key, bytes, pinned) {
        const old = this.entries.get(key);
        if (old) this.remove(key);
        const entry = { bytes, pinned: pinned || Boolean(old?.pinned) };
        this.entries.set(key, entry);
        if (entry.pinned) this.pinnedBytes += bytes;
        else this.unpinnedBytes += bytes;
    }

    /** @param {string} key */
    remove(key) {
        const entry = this.entries.get(key);
        if (!entry) return;
        this.entries.delete(key);
        if (entry.pinned) this.pinnedBytes -= entry.bytes;
        else this.unpinnedBytes -= entry.bytes;
    }

    /** Bytes of ranges in the cache now. */
    get cachedBytes() {
        return this.pinnedBytes + this.unpinnedBytes;
    }

    /**
     * A range's bytes: the cached copy when there is one of the right size (the core checks it
     * all the same), else fetched with a Range request.
     * @param {LazyRange} r
     * @returns {Promise<{bytes: Uint8Array, fromCache: boolean}>}
     */
    async get(r) {
        const key = this.key(r);
        if (this.entries.has(key)) {
            const cached = await this.downloader.cached(key);
            if (cached && cached.length === r.bytes) return { bytes: cached, fromCache: true };
            this.remove(key);  // evicted by the browser, or cut
            this.dirty = true;
        }
        return { bytes: await this.download(r), fromCache: false };
    }

    /**
     * Bytes [offset, offset + bytes) of `r.file` with one Range request, not from the HTTP cache
     * (verified ranges are kept in the Cache API instead). The answer must be a 206 of exactly
     * that range (Content-Range, when the server exposes it, must say so). A server that ignores
     * Range and sends the whole file cannot serve a lazy index (the file may be tens of GB):
     * that is a fatal 'range-unsupported' error, and the body is not read.
     * @param {LazyRange} r
     * @returns {Promise<Uint8Array>}
     */
    async download(r) {
        const start = r.offset;
        const stop = r.offset + r.bytes;
        const url = new URL(r.file, this.downloader.manifestUrl).href;
        const fileBytes = this.fileBytes[r.file];
        let wholeFile = false;
        const baseFetch = this.downloader.retry.fetchImpl ?? fetch;
        /** @type {typeof fetch} */
        const fetchImpl = async (input, init) => {
            const response = await baseFetch(input, init);
            if (response.status !== 200) return response;
            wholeFile = true;
            await response.body?.cancel();
            return new Response(null, { status: 416, statusText: 'Range ignored' });  // not retried
        };
        if (globalThis.navigator?.onLine === false) {
            throw new EarshotError('network', `Bytes ${start}–${stop - 1} of ${r.file} are not cached and the browser is offline.`,
                { fatal: false, file: r.file });
        }
        let answer;
        try {
            // One retry at most: a person is waiting for this listen's answer.
            const retries = Math.min(this.downloader.retry.retries ?? 4, 1);
            answer = await fetchWithRetry(url, {
                ...this.downloader.retry, retries, fetchImpl, init: { cache: 'no-store', headers: { Range: `bytes=${start}-${stop - 1}` } },
            });
        } catch (error) {
            if (!wholeFile) {
                // No network: this range waits for it, the listen says so (not fatal).
                if (error instanceof EarshotError && error.code === 'network') {
                    throw new EarshotError('network', error.message, { fatal: false, file: r.file, cause: error });
                }
                throw error;
            }
            throw new EarshotError('range-unsupported', `The server sent all of ${r.file} when asked for bytes ` +
                `${start}–${stop - 1}: a lazy index needs a server that answers HTTP Range requests (static hosts and CDNs do). ` +
                'Serve the index from one, or use the full index mode.', { file: r.file });
        }
        const body = new Uint8Array(answer.body);
        this.requests += 1;
        this.bytesFetched += body.length;
        this.downloader.bytesDownloaded += body.length;
        const wrong = (what) => new EarshotError('index-corrupt', `The server answered ${what} to a request for bytes ` +
            `${start}–${stop - 1} of ${r.file}: the index on the server is not the one its manifest describes. ` +
            'Re-upload the index.', { fatal: false, file: r.file });
        if (answer.status !== 206) throw wrong(`HTTP ${answer.status}`);
        const contentRange = answer.headers.get('content-range');
        if (contentRange !== null) {
            const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange.trim());
            if (!m || Number(m[1]) !== start || Number(m[2]) !== stop - 1 || (m[3] !== '*' && fileBytes !== undefined && Number(m[3]) !== fileBytes)) {
                throw wrong(`Content-Range: ${contentRange}`);
            }
        }
        if (body.length !== r.bytes) throw wrong(`${body.length} bytes`);
        return body;
    }

    /**
     * A range the core accepted: cached (most recently used), and ranges least recently used
     * evicted while the unpinned ones exceed the budget. A range already cached only moves up.
     * @param {LazyRange} r @param {Uint8Array} bytes @param {boolean} fromCache @param {boolean} [pinned]
     */
    async keep(r, bytes, fromCache, pinned = false) {
        const key = this.key(r);
        if (!pinned && bytes.length > this.budgetBytes) return;
        if (!fromCache || !this.entries.has(key)) await this.downloader.store(key, bytes);
        this.add(key, bytes.length, pinned);
        this.dirty = true;
        const cache = await this.downloader.openCache();
        for (const [old, entry] of this.entries) {
            if (this.unpinnedBytes <= this.budgetBytes) break;
            if (entry.pinned || old === key) continue;
            this.remove(old);
            await cache?.delete?.(old);
        }
    }

    /** A cached range the core refused (changed on the disk, or by the browser): forgotten. @param {LazyRange} r */
    async forget(r) {
        const key = this.key(r);
        this.remove(key);
        this.dirty = true;
        const cache = await this.downloader.openCache();
        await cache?.delete?.(key);
    }

    /** Writes the list of cached ranges (after each look). */
    async save() {
        if (!this.dirty) return;
        this.dirty = false;
        const list = [...this.entries].map(([key, e]) => [key, e.bytes, e.pinned ? 1 : 0]);
        await this.downloader.store(this.listKey, new TextEncoder().encode(JSON.stringify(list)));
    }
}
