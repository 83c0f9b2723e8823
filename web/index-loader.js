// Downloads an earshot index (docs/DESIGN.md section 5) and its model: the manifest first, then
// the quantizer, and then the shards in manifest order (format v1) or the block directory and
// the blocks of the songs file (format v2), fetched with HTTP Range requests of several
// consecutive blocks each. Every file's and every block's size and SHA-256 are checked against
// the manifest or the directory before use; verified files and ranges go to the Cache API so a
// second visit downloads nothing (and works offline); network errors are retried with back-off.
// Runs in the Worker (and in node for tests: pass `cacheStorage: null` or a stand-in).

import { EarshotError, fetchBytesWithRetry, fetchWithRetry, hex, sha256Hex } from './fetch-util.js';

/**
 * @typedef {object} ManifestFile
 * @property {string} file    name relative to the manifest
 * @property {number} bytes
 * @property {string} sha256  lowercase hex
 * @property {number} [songs]
 * @property {number} [frames]  stored embeddings (the index format's name for the count)
 *
 * @typedef {object} BlocksFile  format v2: the songs file, blocks one after the other
 * @property {string} file
 * @property {number} bytes
 * @property {number} count   blocks in it
 *
 * @typedef {object} IndexManifest
 * @property {'earshot-index'} format
 * @property {1 | 2} version
 * @property {string} model_hash
 * @property {string} [model_name]
 * @property {number} embedding_dim
 * @property {number} hop_s
 * @property {ManifestFile} quantizer
 * @property {ManifestFile[]} [shards]     version 1
 * @property {ManifestFile} [directory]    version 2: the block directory
 * @property {BlocksFile} [blocks]         version 2
 * @property {number} songs
 * @property {number} duration_s
 *
 * @typedef {object} LoadedFile
 * @property {Uint8Array} bytes
 * @property {boolean} fromCache true when no byte came over the network
 *
 * @typedef {object} ShardRange  where a shard or block lies (Engine.shardRanges())
 * @property {string} file    v1: the shard file; v2: the songs file
 * @property {number} offset  byte offset in `file` (0 for a v1 shard)
 * @property {number} bytes
 * @property {string} sha256  lowercase hex
 * @property {number} songs
 *
 * @typedef {object} LoadedShard  one shard (v1) or block (v2), verified, or why it was not
 * @property {string} what    "shard-00001.es" or "songs.esb block 3", for messages
 * @property {Uint8Array} [bytes]
 * @property {boolean} [fromCache]
 * @property {EarshotError} [error]  'shard-corrupt' (not fatal): its songs are left out
 */

export const DEFAULT_CACHE_NAME = 'earshot-data-v1';
/** Bytes asked for in one Range request of the songs file (v2), unless one block is larger. */
export const DEFAULT_RANGE_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Groups consecutive blocks into Range requests of at most `maxBytes` (a larger block gets a
 * request of its own; a block is never split).
 * @param {ShardRange[]} ranges in order, each starting where the one before ends
 * @param {number} maxBytes
 * @returns {{first: number, end: number, start: number, stop: number}[]} blocks [first, end)
 *          covering bytes [start, stop) of the songs file
 */
export function planRangeChunks(ranges, maxBytes) {
    const chunks = [];
    for (let b = 0; b < ranges.length; b++) {
        const r = ranges[b];
        const last = chunks[chunks.length - 1];
        if (last && last.stop === r.offset && r.offset + r.bytes - last.start <= maxBytes) {
            last.end = b + 1;
            last.stop = r.offset + r.bytes;
        } else {
            chunks.push({ first: b, end: b + 1, start: r.offset, stop: r.offset + r.bytes });
        }
    }
    return chunks;
}

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
    if (m.version !== 1 && m.version !== 2) fail(`version ${m.version} is not supported (this app reads versions 1 and 2)`);
    if (typeof m.model_hash !== 'string' || !/^[0-9a-f]{64}$/.test(m.model_hash)) fail('model_hash is not a SHA-256 hex string');
    const checkName = (f, where) => {
        if (typeof f !== 'object' || f === null) fail(`${where} is missing`);
        if (typeof f.file !== 'string' || !/^[A-Za-z0-9._-]+$/.test(f.file) || /^\.\.?$/.test(f.file)) {
            fail(`${where}.file is not a plain file name`);
        }
        if (!Number.isSafeInteger(f.bytes) || f.bytes <= 0) fail(`${where}.bytes is not a positive integer`);
    };
    const checkFile = (f, where) => {
        checkName(f, where);
        if (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) fail(`${where}.sha256 is not a SHA-256 hex string`);
    };
    checkFile(m.quantizer, 'quantizer');
    if (m.version === 1) {
        if (!Array.isArray(m.shards) || m.shards.length === 0) fail('shards is not a non-empty array');
        m.shards.forEach((s, i) => checkFile(s, `shards[${i}]`));
        return m;
    }
    checkFile(m.directory, 'directory');
    checkName(m.blocks, 'blocks');
    if (!Number.isSafeInteger(m.blocks.count) || m.blocks.count <= 0 || m.blocks.count > m.blocks.bytes) {
        fail('blocks.count is not a positive integer (at most blocks.bytes)');
    }
    if (new Set([m.quantizer.file, m.directory.file, m.blocks.file]).size !== 3) {
        fail('quantizer, directory and blocks must be three different files');
    }
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
     * @param {number} [options.rangeChunkBytes] v2: bytes per Range request of the songs file
     *        (default DEFAULT_RANGE_CHUNK_BYTES)
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
        this.rangeChunkBytes = options.rangeChunkBytes ?? DEFAULT_RANGE_CHUNK_BYTES;
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
     * copy is there, else downloaded (once more if the first copy does not verify). Serves the
     * quantizer, the block directory (v2) and the shards (v1).
     * Throws EarshotError 'shard-corrupt' (not fatal) when it cannot get a good copy; with
     * `essential` (the quantizer, the directory: nothing works without them) 'index-corrupt',
     * fatal.
     * @param {ManifestFile} entry
     * @param {{essential?: boolean}} [options]
     * @returns {Promise<LoadedFile>}
     */
    async loadFile(entry, { essential = false } = {}) {
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
        if (essential) {
            throw new EarshotError('index-corrupt', `Index file ${entry.file} was rejected (${problem}). ` +
                'Nothing can be recognized without it: rebuild or re-upload the index.', { file: entry.file });
        }
        throw new EarshotError('shard-corrupt', `Index file ${entry.file} was rejected (${problem}). ` +
            'The songs in it are not searchable; the rest of the index still works. ' +
            'Rebuild or re-upload that file.', { fatal: false, file: entry.file });
    }

    /**
     * The index's shards (v1) or blocks (v2), verified, in order, each as soon as it is there.
     * v1: loadFile() of each manifest shard. v2: the blocks `ranges` gives (Engine.shardRanges()
     * once the directory is loaded), fetched from the songs file with Range requests of
     * consecutive blocks (planRangeChunks), each block's size and SHA-256 checked against the
     * directory's. A shard or block without a good copy comes with its error ('shard-corrupt',
     * not fatal: its songs are left out); other failures (HTTP 4xx, no network after the
     * retries) are thrown, as for v1 files.
     * @param {IndexManifest} manifest
     * @param {ShardRange[]} ranges v2 only
     * @returns {AsyncGenerator<LoadedShard>}
     */
    async* loadShards(manifest, ranges) {
        if (manifest.version !== 2) {
            for (const entry of manifest.shards ?? []) {
                try {
                    yield { what: entry.file, ...(await this.loadFile(entry)) };
                } catch (error) {
                    if (!(error instanceof EarshotError) || error.fatal) throw error;
                    yield { what: entry.file, error };
                }
            }
            return;
        }
        const blocks = manifest.blocks;
        if (ranges.length !== blocks.count) {
            throw new EarshotError('index-corrupt', `The block directory lists ${ranges.length} blocks, the manifest ` +
                `${blocks.count}: rebuild or re-upload the index.`, { file: manifest.directory?.file });
        }
        const source = { url: new URL(blocks.file, this.manifestUrl).href, file: blocks.file, bytes: blocks.bytes, whole: null };
        for (const chunk of planRangeChunks(ranges, this.rangeChunkBytes)) {
            yield* this.loadChunk(source, ranges, chunk);
        }
    }

    /**
     * The blocks of one chunk: from the cache when every block of the cached copy verifies, else
     * downloaded with one Range request; a block that does not verify is fetched once more on
     * its own. A chunk whose blocks all verified is cached under its URL with the byte range as
     * the query (".../songs.esb?bytes=START-END", inclusive). When some block stays bad, each
     * good block is cached on its own under its range instead, so that a later visit (or an
     * offline one) has them and downloads only the runs of blocks it lacks; offline, those runs
     * come as non-fatal 'network' errors and the cached blocks still load.
     * @param {{url: string, file: string, bytes: number, whole: Uint8Array | null}} source the
     *        songs file; `whole` keeps it once a server answered a Range request with all of it
     * @param {ShardRange[]} ranges
     * @param {{first: number, end: number, start: number, stop: number}} chunk
     * @param {boolean} [planned] false for a run of blocks within a planned chunk (cached by
     *        block)
     * @returns {AsyncGenerator<LoadedShard>}
     */
    async* loadChunk(source, ranges, chunk, planned = true) {
        const what = (b) => `${source.file} block ${b}`;
        const rangeKey = (start, stop) => `${source.url}${source.url.includes('?') ? '&' : '?'}bytes=${start}-${stop - 1}`;
        const blockKey = (b) => rangeKey(ranges[b].offset, ranges[b].offset + ranges[b].bytes);
        /** block b in `bytes`, the chunk's bytes */
        const blockIn = (bytes, b) => bytes.subarray(ranges[b].offset - chunk.start, ranges[b].offset - chunk.start + ranges[b].bytes);
        const verifyAll = async (bytes) => {
            const problems = new Map();
            for (let b = chunk.first; b < chunk.end; b++) {
                const digest = await sha256Hex(blockIn(bytes, b));
                const expected = ranges[b].sha256;
                if (digest !== expected) {
                    problems.set(b, `its SHA-256 ${digest.slice(0, 12)}… differs from the directory's ${expected.slice(0, 12)}…`);
                }
            }
            return problems;
        };
        const key = rangeKey(chunk.start, chunk.stop);
        const cachedBytes = planned ? await this.cached(key) : null;
        if (cachedBytes && cachedBytes.length === chunk.stop - chunk.start && (await verifyAll(cachedBytes)).size === 0) {
            for (let b = chunk.first; b < chunk.end; b++) yield { what: what(b), bytes: blockIn(cachedBytes, b), fromCache: true };
            return;
        }
        if (planned) {
            // Blocks cached one by one (a visit when some block of this chunk was bad).
            const have = new Map();
            for (let b = chunk.first; b < chunk.end; b++) {
                const one = await this.cached(blockKey(b));
                if (one && one.length === ranges[b].bytes && (await sha256Hex(one)) === ranges[b].sha256) have.set(b, one);
            }
            if (have.size > 0) {
                for (let b = chunk.first; b < chunk.end;) {
                    if (have.has(b)) {
                        yield { what: what(b), bytes: have.get(b), fromCache: true };
                        b += 1;
                        continue;
                    }
                    let end = b;
                    while (end < chunk.end && !have.has(end)) end += 1;
                    const run = { first: b, end, start: ranges[b].offset, stop: ranges[end - 1].offset + ranges[end - 1].bytes };
                    try {
                        yield* this.loadChunk(source, ranges, run, false);  // downloads before it yields
                    } catch (error) {
                        // Offline: the cached blocks work; these wait for the network.
                        if (!(error instanceof EarshotError) || error.code !== 'network') throw error;
                        for (let k = b; k < end; k++) {
                            yield { what: what(k), error: new EarshotError('network', `Block ${k} of ${source.file} is not ` +
                                'cached and could not be downloaded (no network). The songs in it are not searchable until ' +
                                'the network is back; the rest of the index works offline.', { fatal: false, file: what(k), cause: error }) };
                        }
                    }
                    b = end;
                }
                return;
            }
        }
        /** @type {Map<number, string>} block -> why it was rejected */
        let problems;
        let bytes = new Uint8Array(0);
        try {
            bytes = await this.downloadRange(source, chunk.start, chunk.stop);
            problems = await verifyAll(bytes);
        } catch (error) {
            if (!(error instanceof EarshotError) || error.code !== 'range') throw error;
            problems = new Map();
            for (let b = chunk.first; b < chunk.end; b++) problems.set(b, error.message);
        }
        // One more try for each rejected block, on its own (not when the server sent the whole
        // file: it would only send the same bytes again).
        if (problems.size > 0 && bytes.length === chunk.stop - chunk.start && !source.whole) {
            for (const b of [...problems.keys()]) {
                const r = ranges[b];
                try {
                    const again = await this.downloadRange(source, r.offset, r.offset + r.bytes);
                    const digest = await sha256Hex(again);
                    if (digest === r.sha256) {
                        bytes.set(again, r.offset - chunk.start);
                        problems.delete(b);
                    }
                } catch (error) {
                    if (!(error instanceof EarshotError) || error.code !== 'range') throw error;
                }
            }
        }
        if (planned && problems.size === 0) {
            await this.store(key, bytes);
        } else {
            for (let b = chunk.first; b < chunk.end; b++) {
                if (!problems.has(b)) await this.store(blockKey(b), blockIn(bytes, b).slice());
            }
        }
        for (let b = chunk.first; b < chunk.end; b++) {
            const r = ranges[b];
            const problem = problems.get(b);
            if (problem === undefined) {
                yield { what: what(b), bytes: blockIn(bytes, b), fromCache: false };
            } else {
                const message = `Block ${b} of ${source.file} (bytes ${r.offset}–${r.offset + r.bytes - 1}) was rejected ` +
                    `(${problem}). The songs in it are not searchable; the rest of the index still works. ` +
                    'Rebuild or re-upload the index.';
                yield { what: what(b), error: new EarshotError('shard-corrupt', message, { fatal: false, file: what(b) }) };
            }
        }
    }

    /**
     * Bytes [start, stop) of the songs file with one Range request. A 206 must have that many
     * bytes and its Content-Range, when visible, name exactly that range of a file of the
     * manifest's size; a 200 (a server that ignores Range) must be the whole file, which is
     * then kept and sliced for every later range instead of downloaded again. Throws
     * EarshotError 'range' (caught by loadChunk, never seen by the page) when the answer is not
     * what was asked.
     * @param {{url: string, file: string, bytes: number, whole: Uint8Array | null}} source
     * @param {number} start @param {number} stop
     * @returns {Promise<Uint8Array>}
     */
    async downloadRange(source, start, stop) {
        if (source.whole) return source.whole.slice(start, stop);
        const asked = `bytes ${start}-${stop - 1}/${source.bytes}`;
        const wrong = (answered) => new EarshotError('range', `the server answered ${answered} to a request for ${asked}`,
            { fatal: false, file: source.file });
        // Not from the HTTP cache (browsers handle partial entries unevenly): verified ranges are
        // kept in the Cache API instead.
        const answer = await fetchWithRetry(source.url, {
            ...this.retry, init: { cache: 'no-store', headers: { Range: `bytes=${start}-${stop - 1}` } },
        });
        this.bytesDownloaded += answer.body.byteLength;
        const body = new Uint8Array(answer.body);
        if (answer.status === 200) {
            if (body.length !== source.bytes) {
                throw wrong(`the whole file, ${body.length} bytes where the manifest says ${source.bytes} ` +
                    '(a stale or partly uploaded index)');
            }
            source.whole = body;
            return body.slice(start, stop);
        }
        if (answer.status !== 206) throw wrong(`HTTP ${answer.status}`);
        // Cross-origin, the header is hidden unless the server exposes it
        // (Access-Control-Expose-Headers): then the length and the blocks' SHA-256 must do.
        const contentRange = answer.headers.get('content-range');
        if (contentRange !== null) {
            const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange.trim());
            if (!m || Number(m[1]) !== start || Number(m[2]) !== stop - 1 || (m[3] !== '*' && Number(m[3]) !== source.bytes)) {
                throw wrong(`Content-Range: ${contentRange}`);
            }
        }
        if (body.length !== stop - start) throw wrong(`${body.length} bytes`);
        return body;
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
