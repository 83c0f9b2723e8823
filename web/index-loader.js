// Downloads an earshot index (docs/DESIGN.md section 5) and its model: the manifest first, then
// the quantizer and the shards in manifest order. Every file's size and SHA-256 are checked
// against the manifest before use; verified files go to the Cache API so a second visit
// downloads nothing (and works offline); network errors are retried with back-off.
// Runs in the Worker (and in node for tests: pass `cacheStorage: null` or a stand-in).

import { EarshotError, fetchBytesWithRetry, hex, sha256Hex } from './fetch-util.js';

/**
 * @typedef {object} ManifestFile
 * @property {string} file    name relative to the manifest
 * @property {number} bytes
 * @property {string} sha256  lowercase hex
 * @property {number} [songs]
 * @property {number} [frames]  stored embeddings (the index format's name for the count)
 *
 * @typedef {object} IndexManifest
 * @property {'earshot-index'} format
 * @property {number} version
 * @property {string} model_hash
 * @property {string} [model_name]
 * @property {number} embedding_dim
 * @property {number} hop_s
 * @property {ManifestFile} quantizer
 * @property {ManifestFile[]} shards
 * @property {number} songs
 * @property {number} duration_s
 *
 * @typedef {object} LoadedFile
 * @property {Uint8Array} bytes
 * @property {boolean} fromCache true when no byte came over the network
 */

export const DEFAULT_CACHE_NAME = 'earshot-data-v1';

/**
 * Checks the manifest's shape so later code can trust it; messages name the bad field.
 * @param {unknown} value parsed JSON
 * @param {string} url for messages
 * @returns {IndexManifest}
 */
export function validateManifest(value, url) {
    const fail = (what) => {
        throw new EarshotError('manifest-invalid', `The index manifest ${url} is invalid: ${what}. ` +
            'Rebuild the index with `earshot build`.', { file: url });
    };
    if (typeof value !== 'object' || value === null) fail('not a JSON object');
    const m = /** @type {any} */ (value);
    if (m.format !== 'earshot-index') fail(`format is ${JSON.stringify(m.format)}, expected "earshot-index"`);
    if (m.version !== 1) fail(`version ${m.version} is not supported (this app reads version 1)`);
    if (typeof m.model_hash !== 'string' || !/^[0-9a-f]{64}$/.test(m.model_hash)) fail('model_hash is not a SHA-256 hex string');
    const checkFile = (f, where) => {
        if (typeof f !== 'object' || f === null) fail(`${where} is missing`);
        if (typeof f.file !== 'string' || !/^[A-Za-z0-9._-]+$/.test(f.file)) fail(`${where}.file is not a plain file name`);
        if (!Number.isSafeInteger(f.bytes) || f.bytes <= 0) fail(`${where}.bytes is not a positive integer`);
        if (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) fail(`${where}.sha256 is not a SHA-256 hex string`);
    };
    checkFile(m.quantizer, 'quantizer');
    if (!Array.isArray(m.shards) || m.shards.length === 0) fail('shards is not a non-empty array');
    m.shards.forEach((s, i) => checkFile(s, `shards[${i}]`));
    return m;
}

export class IndexDownloader {
    /**
     * @param {object} options
     * @param {string} options.indexUrl  URL of manifest.json, or of the folder holding it
     * @param {string} options.modelUrl  URL of the .emod model file
     * @param {CacheStorage | null} [options.cacheStorage] default: globalThis.caches if present
     * @param {string} [options.cacheName]
     * @param {import('./fetch-util.js').RetryOptions} [options.retry]
     * @param {string} [options.baseUrl] resolves relative URLs (default: self.location)
     */
    constructor(options) {
        const base = options.baseUrl ?? globalThis.location?.href;
        let indexUrl = new URL(options.indexUrl, base).href;
        if (!indexUrl.endsWith('.json')) indexUrl = indexUrl.replace(/\/?$/, '/manifest.json');
        this.manifestUrl = indexUrl;
        this.modelUrl = new URL(options.modelUrl, base).href;
        this.cacheStorage = options.cacheStorage === undefined ? (globalThis.caches ?? null) : options.cacheStorage;
        this.cacheName = options.cacheName ?? DEFAULT_CACHE_NAME;
        this.retry = options.retry ?? {};
        /** bytes that came over the network (not from a cache) */
        this.bytesDownloaded = 0;
        /** @type {Cache | null | undefined} */
        this.cache = undefined;
    }

    /** @returns {Promise<Cache | null>} */
    async openCache() {
        if (this.cache !== undefined) return this.cache;
        try {
            this.cache = this.cacheStorage ? await this.cacheStorage.open(this.cacheName) : null;
        } catch {
            this.cache = null;  // e.g. storage disabled: still works, just without caching
        }
        return this.cache;
    }

    /** @param {string} url */
    async cached(url) {
        const cache = await this.openCache();
        if (!cache) return null;
        const response = await cache.match(url);
        return response ? new Uint8Array(await response.arrayBuffer()) : null;
    }

    /** @param {string} url @param {Uint8Array} bytes */
    async store(url, bytes) {
        const cache = await this.openCache();
        if (!cache) return;
        try {
            await cache.put(url, new Response(bytes, {
                headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
            }));
        } catch {
            // Quota exceeded or storage disabled: not fatal, the next visit downloads again.
        }
    }

    /** @param {string} url */
    async download(url, init) {
        const body = await fetchBytesWithRetry(url, { ...this.retry, init });
        this.bytesDownloaded += body.byteLength;
        return new Uint8Array(body);
    }

    /**
     * The manifest: revalidated with the server when online (a 304 costs no body), the cached
     * copy when the network is unreachable.
     * @returns {Promise<{manifest: IndexManifest, text: string, fromCache: boolean}>}
     */
    async loadManifest() {
        const cachedBytes = await this.cached(this.manifestUrl);
        let bytes;
        let fromCache = false;
        try {
            bytes = await fetchBytesWithRetry(this.manifestUrl, {
                ...this.retry,
                // With a cached copy, one quick try: offline we go on with the copy.
                retries: cachedBytes ? 0 : this.retry.retries,
                init: { cache: 'no-cache' },
            }).then((b) => new Uint8Array(b));
        } catch (error) {
            if (!cachedBytes || (error instanceof EarshotError && error.code === 'http')) throw error;
            bytes = cachedBytes;
            fromCache = true;
        }
        const text = new TextDecoder().decode(bytes);
        let json;
        try {
            json = JSON.parse(text);
        } catch (error) {
            throw new EarshotError('manifest-invalid', `The index manifest ${this.manifestUrl} is not valid JSON ` +
                `(${/** @type {Error} */ (error).message}). Check the index URL.`, { file: this.manifestUrl });
        }
        const manifest = validateManifest(json, this.manifestUrl);
        if (!fromCache && (!cachedBytes || text !== new TextDecoder().decode(cachedBytes))) {
            await this.store(this.manifestUrl, bytes);
        }
        return { manifest, text, fromCache };
    }

    /** Absolute URL of a file named in the manifest. @param {ManifestFile} entry */
    fileUrl(entry) {
        return new URL(entry.file, this.manifestUrl).href;
    }

    /**
     * A file listed in the manifest, verified (size + SHA-256): from the cache when a verified
     * copy is there, else downloaded (once more if the first copy does not verify).
     * Throws EarshotError 'shard-corrupt' (not fatal) when it cannot get a good copy.
     * @param {ManifestFile} entry
     * @returns {Promise<LoadedFile>}
     */
    async loadFile(entry) {
        const url = this.fileUrl(entry);
        const verify = async (bytes) => {
            if (bytes.length !== entry.bytes) {
                return `it has ${bytes.length} bytes instead of ${entry.bytes} (truncated or replaced)`;
            }
            const digest = await sha256Hex(bytes);
            return digest === entry.sha256 ? null : `its SHA-256 ${digest.slice(0, 12)}… differs from the manifest's ${entry.sha256.slice(0, 12)}…`;
        };
        const cachedBytes = await this.cached(url);
        if (cachedBytes && (await verify(cachedBytes)) === null) return { bytes: cachedBytes, fromCache: true };
        let problem = '';
        for (let attempt = 0; attempt < 2; attempt++) {
            const bytes = await this.download(url, { cache: attempt === 0 ? 'no-cache' : 'reload' });
            problem = await verify(bytes) ?? '';
            if (!problem) {
                await this.store(url, bytes);
                return { bytes, fromCache: false };
            }
        }
        throw new EarshotError('shard-corrupt', `Index file ${entry.file} was rejected (${problem}). ` +
            'The songs in it are not searchable; the rest of the index still works. ' +
            'Rebuild or re-upload that file.', { fatal: false, file: entry.file });
    }

    /**
     * The model file, checked against the index: its trailing SHA-256 (the model hash) must equal
     * the manifest's model_hash and the file's own digest.
     * @param {string} expectedHash manifest.model_hash
     * @returns {Promise<LoadedFile>}
     */
    async loadModel(expectedHash) {
        const url = this.modelUrl;
        const check = async (bytes) => {
            if (bytes.length < 64) return `it has only ${bytes.length} bytes`;
            const trailer = hex(bytes.subarray(bytes.length - 32));
            const digest = await sha256Hex(bytes.subarray(0, bytes.length - 32));
            if (digest !== trailer) return 'its checksum does not match its contents (corrupt or truncated download)';
            if (trailer !== expectedHash) return `its model hash ${trailer.slice(0, 12)}… differs from the index's ${expectedHash.slice(0, 12)}…`;
            return null;
        };
        const cachedBytes = await this.cached(url);
        if (cachedBytes && (await check(cachedBytes)) === null) return { bytes: cachedBytes, fromCache: true };
        const bytes = await this.download(url, { cache: 'no-cache' });
        const problem = await check(bytes);
        if (problem) {
            throw new EarshotError('model-mismatch', `The model ${url} cannot be used with this index (${problem}). ` +
                'Serve the model the index was built with (manifest.json "model_hash").', { file: url });
        }
        await this.store(url, bytes);
        return { bytes, fromCache: false };
    }
}
