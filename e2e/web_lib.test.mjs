// Unit tests of the web library's browser-independent parts, under node: the streaming
// resampler, retry with back-off, and the index downloader (SHA-256 verification, caching,
// tampered/truncated shards, offline manifest; format 2 blocks by Range request) and the lazy
// mode's range store (Range requests, the Cache API budget) against a real local HTTP server.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { backoffDelayMs, EarshotError, fetchBytesWithRetry } from '../web/fetch-util.js';
import { IndexDownloader, planRangeChunks, validateManifest } from '../web/index-loader.js';
import { LazyRangeStore } from '../web/lazy-loader.js';
import { StreamingResampler } from '../web/resampler.js';
import { startServer } from '../scripts/serve.mjs';
import { MemoryCacheStorage } from './helpers.mjs';

function tone(freqHz, rateHz, seconds, amplitude = 0.5) {
    const n = Math.round(rateHz * seconds);
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = amplitude * Math.sin(2 * Math.PI * freqHz * i / rateHz);
    return x;
}

function rms(x, from = 0) {
    let s = 0;
    for (let i = from; i < x.length; i++) s += x[i] * x[i];
    return Math.sqrt(s / (x.length - from));
}

/** Runs body(server) with scripts/serve.mjs serving `root` (with test faults), then closes it. */
async function withServerAt(root, faults, body) {
    const server = await startServer({ root, faults });
    try {
        return await body(server);
    } finally {
        await server.close();
    }
}

describe('StreamingResampler', () => {
    test('48 kHz -> 16 kHz keeps a 1 kHz tone (amplitude within 1%, right frequency)', () => {
        const r = new StreamingResampler(48000, 16000);
        const out = r.process(tone(1000, 48000, 1));
        assert.ok(Math.abs(out.length - 16000) < 40, `got ${out.length} samples`);
        const settled = out.subarray(200);
        assert.ok(Math.abs(rms(settled) - 0.5 / Math.SQRT2) < 0.005, `rms ${rms(settled)}`);
        // Correlate with the expected 1 kHz at 16 kHz (phase-free: quadrature pair).
        let c = 0, s = 0;
        for (let i = 0; i < settled.length; i++) {
            c += settled[i] * Math.cos(2 * Math.PI * 1000 * i / 16000);
            s += settled[i] * Math.sin(2 * Math.PI * 1000 * i / 16000);
        }
        const amplitude = 2 * Math.hypot(c, s) / settled.length;
        assert.ok(Math.abs(amplitude - 0.5) < 0.01, `1 kHz amplitude ${amplitude}`);
    });

    test('a 12 kHz tone (above the 8 kHz output Nyquist) is suppressed by > 50 dB, not aliased', () => {
        const r = new StreamingResampler(48000, 16000);
        const out = r.process(tone(12000, 48000, 1)).subarray(200);
        const db = 20 * Math.log10(rms(out) / (0.5 / Math.SQRT2));
        assert.ok(db < -50, `alias level ${db.toFixed(1)} dB`);
    });

    test('44.1 kHz input in odd block sizes gives the same samples as one big block', () => {
        const x = tone(440, 44100, 0.5);
        const whole = new StreamingResampler(44100, 16000).process(x);
        const r = new StreamingResampler(44100, 16000);
        const parts = [];
        let offset = 0;
        for (const size of [1, 127, 128, 300, 1000, 7]) {
            while (offset < x.length) {
                const n = Math.min(size, x.length - offset);
                parts.push(...r.process(x.subarray(offset, offset + n)));
                offset += n;
                if (size !== 7) break;
            }
        }
        assert.equal(parts.length, whole.length);
        for (let i = 0; i < whole.length; i++) assert.ok(Math.abs(parts[i] - whole[i]) < 1e-6, `sample ${i}`);
    });

    test('equal rates pass samples through', () => {
        const x = tone(440, 16000, 0.1);
        assert.equal(new StreamingResampler(16000, 16000).process(x), x);
    });
});

describe('fetchBytesWithRetry', () => {
    test('back-off doubles from the base delay up to the cap, with +-25% jitter', () => {
        assert.equal(backoffDelayMs(1, 500, 8000, () => 0.5), 500);
        assert.equal(backoffDelayMs(2, 500, 8000, () => 0.5), 1000);
        assert.equal(backoffDelayMs(6, 500, 8000, () => 0.5), 8000);
        assert.equal(backoffDelayMs(1, 500, 8000, () => 0), 375);
        assert.equal(backoffDelayMs(1, 500, 8000, () => 1), 625);
    });

    test('retries network errors and 503s with growing delays, then succeeds', async () => {
        const outcomes = [() => { throw new TypeError('fetch failed'); }, () => new Response('busy', { status: 503 }),
            () => new Response(new Uint8Array([1, 2, 3]))];
        const delays = [];
        const body = await fetchBytesWithRetry('http://x/f', {
            fetchImpl: async () => outcomes.shift()(), sleep: async (ms) => { delays.push(ms); }, baseDelayMs: 100,
        });
        assert.deepEqual([...new Uint8Array(body)], [1, 2, 3]);
        assert.equal(delays.length, 2);
        assert.ok(delays[0] >= 75 && delays[0] <= 125 && delays[1] >= 150 && delays[1] <= 250, `delays ${delays}`);
    });

    test('a 404 fails at once with an "http" error naming the URL', async () => {
        let calls = 0;
        await assert.rejects(fetchBytesWithRetry('http://x/missing.es', {
            fetchImpl: async () => { calls++; return new Response('no', { status: 404, statusText: 'Not Found' }); },
            sleep: async () => {},
        }), (e) => e instanceof EarshotError && e.code === 'http' && /missing\.es.*404/.test(e.message));
        assert.equal(calls, 1);
    });

    test('gives up after retries with a "network" error', async () => {
        let calls = 0;
        await assert.rejects(fetchBytesWithRetry('http://x/f', {
            retries: 3, fetchImpl: async () => { calls++; throw new TypeError('fetch failed'); }, sleep: async () => {},
        }), (e) => e.code === 'network' && /after 4 attempts/.test(e.message));
        assert.equal(calls, 4);
    });
});

describe('IndexDownloader', () => {
    let dir;
    let files;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-loader-'));
        fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
        fs.mkdirSync(path.join(dir, 'index'));
        const write = (name, bytes) => {
            fs.writeFileSync(path.join(dir, 'index', name), bytes);
            return { file: name, bytes: bytes.length, sha256: crypto.createHash('sha256').update(bytes).digest('hex') };
        };
        // A fake "model": payload + SHA-256 trailer, like the container format.
        const payload = crypto.randomBytes(1000);
        const model = Buffer.concat([payload, crypto.createHash('sha256').update(payload).digest()]);
        fs.writeFileSync(path.join(dir, 'model.emod'), model);
        files = {
            modelHash: model.subarray(model.length - 32).toString('hex'),
            quantizer: write('quantizer.eq', crypto.randomBytes(3000)),
            shards: [write('shard-00000.es', crypto.randomBytes(5000)), write('shard-00001.es', crypto.randomBytes(7000))],
        };
        fs.writeFileSync(path.join(dir, 'index/manifest.json'), JSON.stringify({
            format: 'earshot-index', version: 1, model_hash: files.modelHash, embedding_dim: 128, hop_s: 0.5,
            quantizer: files.quantizer, shards: files.shards, songs: 2, duration_s: 60,
        }));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const withServer = (faults, body) => withServerAt(dir, faults, body);

    test('downloads and verifies everything, then a second visit downloads nothing', async () => {
        const cacheStorage = new MemoryCacheStorage();
        await withServer({}, async (server) => {
            const first = new IndexDownloader({ indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: server.url, cacheStorage });
            const { manifest } = await first.loadManifest();
            assert.equal((await first.loadModel(manifest.model_hash)).fromCache, false);
            for (const entry of [manifest.quantizer, ...manifest.shards]) {
                const loaded = await first.loadFile(entry);
                assert.equal(loaded.fromCache, false);
                assert.equal(loaded.bytes.length, entry.bytes);
            }
            assert.equal(first.bytesDownloaded, 1032 + 3000 + 5000 + 7000);

            const logBefore = server.log.length;
            const second = new IndexDownloader({ indexUrl: 'index/manifest.json', modelUrl: 'model.emod', baseUrl: server.url, cacheStorage });
            const again = await second.loadManifest();
            await second.loadModel(again.manifest.model_hash);
            for (const entry of [again.manifest.quantizer, ...again.manifest.shards]) assert.equal((await second.loadFile(entry)).fromCache, true);
            assert.equal(second.bytesDownloaded, 0);
            // Only the manifest was revalidated over the network.
            assert.deepEqual(server.log.slice(logBefore).map((r) => r.path), ['/index/manifest.json']);
        });
    });

    test('a tampered shard is rejected (not fatal, not cached) while the other shard loads', async () => {
        const cacheStorage = new MemoryCacheStorage();
        await withServer({ tamper: ['/index/shard-00000.es'] }, async (server) => {
            const loader = new IndexDownloader({ indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: server.url, cacheStorage });
            const { manifest } = await loader.loadManifest();
            await assert.rejects(loader.loadFile(manifest.shards[0]),
                (e) => e.code === 'shard-corrupt' && e.fatal === false && /shard-00000\.es.*SHA-256/.test(e.message));
            assert.equal((await loader.loadFile(manifest.shards[1])).bytes.length, 7000);
            const cache = await cacheStorage.open('earshot-data-v1');
            assert.equal(await cache.match(loader.fileUrl(manifest.shards[0])), undefined);
        });
    });

    test('a truncated shard is rejected with its size in the message', async () => {
        await withServer({ truncate: ['/index/shard-00001.es'] }, async (server) => {
            const loader = new IndexDownloader({ indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: server.url, cacheStorage: null });
            const { manifest } = await loader.loadManifest();
            await assert.rejects(loader.loadFile(manifest.shards[1]), (e) => e.code === 'shard-corrupt' && /3500 bytes instead of 7000/.test(e.message));
        });
    });

    test('transient 503s on a shard are retried with back-off', async () => {
        await withServer({ failTimes: { '/index/shard-00000.es': 2 } }, async (server) => {
            const retries = [];
            const loader = new IndexDownloader({
                indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: server.url, cacheStorage: null,
                retry: { baseDelayMs: 10, onRetry: (info) => retries.push(info) },
            });
            const { manifest } = await loader.loadManifest();
            assert.equal((await loader.loadFile(manifest.shards[0])).bytes.length, 5000);
            assert.equal(retries.length, 2);
            assert.match(retries[0].reason, /503/);
        });
    });

    test('offline, the cached manifest is used; a model of another index is refused', async () => {
        const cacheStorage = new MemoryCacheStorage();
        let url;
        await withServer({}, async (server) => {
            url = server.url;
            const loader = new IndexDownloader({ indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: url, cacheStorage });
            const { manifest } = await loader.loadManifest();
            await assert.rejects(loader.loadModel('0'.repeat(64)), (e) => e.code === 'model-mismatch' && /model hash/.test(e.message));
            assert.equal(manifest.shards.length, 2);
        });
        // The server is gone now.
        const offline = new IndexDownloader({ indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: url, cacheStorage, retry: { retries: 0 } });
        const { manifest, fromCache } = await offline.loadManifest();
        assert.equal(fromCache, true);
        assert.equal(manifest.songs, 2);
    });

    test('manifest validation names the bad field', () => {
        assert.throws(() => validateManifest({ format: 'earshot-index', version: 3 }, 'm.json'), /version 3 is not supported \(this app reads versions 1 and 2\)/);
        assert.throws(() => validateManifest({
            format: 'earshot-index', version: 1, model_hash: 'a'.repeat(64),
            quantizer: { file: '../etc/passwd', bytes: 1, sha256: 'a'.repeat(64) }, shards: [],
        }, 'm.json'), /quantizer\.file is not a plain file name/);
        // Format 2: a directory (hashed) and a blocks file (size and count) instead of shards.
        const file = (name) => ({ file: name, bytes: 10, sha256: 'b'.repeat(64) });
        const v2 = {
            format: 'earshot-index', version: 2, model_hash: 'a'.repeat(64), quantizer: file('quantizer.eq'),
            directory: file('directory.ed'), blocks: { file: 'songs.esb', bytes: 100, count: 3 }, songs: 3,
        };
        assert.equal(validateManifest(v2, 'm.json'), v2);
        const refused = (change, pattern) => assert.throws(() => validateManifest({ ...v2, ...change }, 'm.json'), pattern);
        refused({ directory: undefined }, /directory is missing/);
        refused({ directory: { file: 'directory.ed', bytes: 10 } }, /directory\.sha256 is not a SHA-256 hex string/);
        refused({ blocks: undefined }, /blocks is missing/);
        refused({ blocks: { file: '..', bytes: 100, count: 3 } }, /blocks\.file is not a plain file name/);
        refused({ blocks: { file: 'songs.esb', bytes: 0, count: 3 } }, /blocks\.bytes is not a positive integer/);
        refused({ blocks: { file: 'songs.esb', bytes: 100, count: 0 } }, /blocks\.count is not a positive integer/);
        refused({ blocks: { file: 'songs.esb', bytes: 100, count: 2.5 } }, /blocks\.count is not a positive integer/);
        refused({ blocks: { file: 'directory.ed', bytes: 100, count: 3 } }, /three different files/);
    });
});

describe('IndexDownloader, format 2: blocks by Range request', () => {
    // A songs file of 5 random "blocks" (the loader checks sizes and hashes; the engine, not
    // used here, parses them), with the ranges Engine.shardRanges() would give.
    const sizes = [3000, 5000, 2000, 9000, 4000];
    let dir;
    let songs;
    /** @type {{file: string, offset: number, bytes: number, sha256: string, songs: number}[]} */
    let ranges;
    const sha = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-blocks-'));
        fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
        fs.mkdirSync(path.join(dir, 'index'));
        songs = crypto.randomBytes(sizes.reduce((a, b) => a + b, 0));
        ranges = [];
        let offset = 0;
        for (const bytes of sizes) {
            ranges.push({ file: 'songs.esb', offset, bytes, sha256: sha(songs.subarray(offset, offset + bytes)), songs: 1 });
            offset += bytes;
        }
        fs.writeFileSync(path.join(dir, 'index/songs.esb'), songs);
        const write = (name, bytes) => {
            fs.writeFileSync(path.join(dir, 'index', name), bytes);
            return { file: name, bytes: bytes.length, sha256: sha(bytes) };
        };
        fs.writeFileSync(path.join(dir, 'index/manifest.json'), JSON.stringify({
            format: 'earshot-index', version: 2, model_hash: 'a'.repeat(64), embedding_dim: 128, hop_s: 0.25,
            quantizer: write('quantizer.eq', crypto.randomBytes(3000)), directory: write('directory.ed', crypto.randomBytes(500)),
            blocks: { file: 'songs.esb', bytes: songs.length, count: sizes.length }, songs: sizes.length, duration_s: 100,
        }));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** Every block the downloader yields, with the server's log of songs.esb requests. */
    async function loadAll(server, options = {}) {
        const loader = new IndexDownloader({
            indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: server.url, cacheStorage: null, ...options,
        });
        const { manifest } = await loader.loadManifest();
        const before = server.log.length;
        const loaded = [];
        for await (const shard of loader.loadShards(manifest, ranges)) loaded.push(shard);
        const requests = server.log.slice(before).filter((r) => r.path === '/index/songs.esb');
        return { loader, manifest, loaded, requests };
    }
    const blockOf = (b) => songs.subarray(ranges[b].offset, ranges[b].offset + ranges[b].bytes);

    test('planRangeChunks groups consecutive blocks up to the limit and never splits one', () => {
        const plan = (max) => planRangeChunks(ranges, max).map((c) => [c.first, c.end, c.start, c.stop]);
        assert.deepEqual(plan(10000), [[0, 3, 0, 10000], [3, 4, 10000, 19000], [4, 5, 19000, 23000]]);
        assert.deepEqual(plan(1000), sizes.map((_, b) => [b, b + 1, ranges[b].offset, ranges[b].offset + sizes[b]]));
        assert.deepEqual(plan(1e9), [[0, 5, 0, 23000]]);
    });

    test('blocks come in Range requests of several blocks (206), verified, cached by range; a second visit downloads none, offline too', async () => {
        const cacheStorage = new MemoryCacheStorage();
        let url;
        await withBlocksServer({}, async (server) => {
            url = server.url;
            const { loader, loaded, requests } = await loadAll(server, { cacheStorage, rangeChunkBytes: 10000 });
            assert.deepEqual(requests.map((r) => [r.status, r.range]), [[206, '0-9999'], [206, '10000-18999'], [206, '19000-22999']]);
            assert.deepEqual(loaded.map((l) => l.what), sizes.map((_, b) => `songs.esb block ${b}`));
            loaded.forEach((l, b) => {
                assert.equal(l.error, undefined);
                assert.equal(l.fromCache, false);
                assert.deepEqual(Buffer.from(l.bytes), blockOf(b));
            });
            assert.equal(loader.bytesDownloaded, songs.length);
            const keys = [...(await cacheStorage.open('earshot-data-v1')).entries.keys()].filter((k) => k.includes('songs.esb'));
            const base = `${server.url}index/songs.esb`;
            assert.deepEqual(keys.sort(), [`${base}?bytes=0-9999`, `${base}?bytes=10000-18999`, `${base}?bytes=19000-22999`]);

            const again = await loadAll(server, { cacheStorage, rangeChunkBytes: 10000 });
            assert.deepEqual(again.requests, []);
            assert.equal(again.loader.bytesDownloaded, 0);
            assert.ok(again.loaded.every((l) => l.fromCache === true));
        });
        // No server at all: the manifest and every block from the cache.
        const offline = new IndexDownloader({ indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: url, cacheStorage,
            retry: { retries: 0 }, rangeChunkBytes: 10000 });
        const { manifest, fromCache } = await offline.loadManifest();
        assert.equal(fromCache, true);
        const loaded = [];
        for await (const shard of offline.loadShards(manifest, ranges)) loaded.push(shard);
        assert.equal(loaded.length, sizes.length);
        loaded.forEach((l, b) => assert.deepEqual(Buffer.from(l.bytes), blockOf(b)));
    });

    test('a server that ignores Range (200, whole file) is asked once and its answer sliced', async () => {
        await withBlocksServer({ ignoreRange: ['/index/songs.esb'] }, async (server) => {
            const { loader, loaded, requests } = await loadAll(server, { rangeChunkBytes: 10000 });
            assert.deepEqual(requests.map((r) => [r.status, r.range]), [[200, undefined]]);
            loaded.forEach((l, b) => assert.deepEqual(Buffer.from(l.bytes), blockOf(b)));
            assert.equal(loader.bytesDownloaded, songs.length);
        });
    });

    test('a tampered block is rejected by name (after one more try on its own); the others of its request load and are cached one by one; nothing corrupt is cached', async () => {
        const cacheStorage = new MemoryCacheStorage();
        // serve.mjs flips the middle byte of the file: byte 11500, in block 3 (bytes 10000-18999).
        await withBlocksServer({ tamper: ['/index/songs.esb'] }, async (server) => {
            const { loaded, requests } = await loadAll(server, { cacheStorage });
            assert.deepEqual(requests.map((r) => r.range), ['0-22999', '10000-18999']);
            assert.deepEqual(loaded.map((l) => l.error === undefined), [true, true, true, false, true]);
            const { error } = loaded[3];
            assert.equal(error.code, 'shard-corrupt');
            assert.equal(error.fatal, false);
            assert.equal(error.file, 'songs.esb block 3');
            assert.match(error.message, /^Block 3 of songs\.esb \(bytes 10000–18999\) was rejected \(its SHA-256 [0-9a-f]{12}… differs from the directory's/);
            for (const b of [0, 1, 2, 4]) assert.deepEqual(Buffer.from(loaded[b].bytes), blockOf(b));
            const keys = [...(await cacheStorage.open('earshot-data-v1')).entries.keys()];
            assert.deepEqual(keys.filter((k) => k.includes('songs.esb')).map((k) => k.split('?bytes=')[1]).sort(),
                [0, 1, 2, 4].map((b) => `${ranges[b].offset}-${ranges[b].offset + ranges[b].bytes - 1}`).sort());
        });
    });

    test('a 206 for another range than asked is refused (its blocks named), not sliced', async () => {
        await withBlocksServer({}, async (server) => {
            // A proxy that shifts the range by one byte.
            const fetchImpl = (url, init) => {
                const range = init?.headers?.Range?.replace(/=(\d+)-/, (_, start) => `=${Number(start) + 1}-`);
                return fetch(url, range ? { ...init, headers: { ...init.headers, Range: range } } : init);
            };
            const { loaded } = await loadAll(server, { retry: { fetchImpl } });
            assert.equal(loaded.length, sizes.length);
            loaded.forEach((l, b) => {
                assert.equal(l.error?.code, 'shard-corrupt', `block ${b}`);
                assert.match(l.error.message, new RegExp(`^Block ${b} of songs\\.esb .*the server answered Content-Range: bytes 1-22999/23000 ` +
                    'to a request for bytes 0-22999/23000'));
            });
        });
    });

    test('503s on the songs file are retried with back-off; a directory of another block count is refused', async () => {
        await withBlocksServer({ failTimes: { '/index/songs.esb': 2 } }, async (server) => {
            const retries = [];
            const { loaded, requests } = await loadAll(server, { retry: { baseDelayMs: 10, onRetry: (info) => retries.push(info) } });
            assert.deepEqual(requests.map((r) => r.status), [503, 503, 206]);
            assert.equal(retries.length, 2);
            loaded.forEach((l, b) => assert.deepEqual(Buffer.from(l.bytes), blockOf(b)));

            const loader = new IndexDownloader({ indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: server.url, cacheStorage: null });
            const { manifest } = await loader.loadManifest();
            await assert.rejects(loader.loadShards(manifest, ranges.slice(1)).next(),
                (e) => e.code === 'index-corrupt' && /directory lists 4 blocks, the manifest 5/.test(e.message));
        });
    });

    const withBlocksServer = (faults, body) => withServerAt(dir, faults, body);
});

describe('LazyRangeStore: a lazy index\'s ranges by Range request, kept under a byte budget', () => {
    let dir;
    let data;
    const KB = 1024;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-lazy-store-'));
        fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
        fs.mkdirSync(path.join(dir, 'index'));
        fs.writeFileSync(path.join(dir, 'index/manifest.json'), '{}');
        data = crypto.randomBytes(100 * KB);
        fs.writeFileSync(path.join(dir, 'index/songs.esb'), data);
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** A store of `server`'s index/songs.esb ranges over `cacheStorage`. */
    function storeOf(server, cacheStorage, budgetBytes, retry = {}) {
        const downloader = new IndexDownloader({ indexUrl: 'index/', modelUrl: 'model.emod', baseUrl: server.url, cacheStorage, retry });
        return new LazyRangeStore({ downloader, fileBytes: { 'songs.esb': data.length }, budgetBytes });
    }
    const range = (k) => ({ kind: 'block', id: k, file: 'songs.esb', offset: k * 10 * KB, bytes: 10 * KB });
    const slice = (r) => data.subarray(r.offset, r.offset + r.bytes);

    test('each range is one 206 of exactly its bytes; kept ranges come from the cache, the least recently used leave first, pinned ones stay', async () => {
        const cacheStorage = new MemoryCacheStorage();
        await withServerAt(dir, {}, async (server) => {
            const store = storeOf(server, cacheStorage, 25 * KB);
            await store.open();
            const pinned = range(9);
            const got = await store.get(pinned);
            assert.equal(got.fromCache, false);
            assert.deepEqual(Buffer.from(got.bytes), slice(pinned));
            await store.keep(pinned, got.bytes, got.fromCache, true);
            for (const k of [0, 1]) {
                const r = range(k);
                const { bytes, fromCache } = await store.get(r);
                assert.deepEqual(Buffer.from(bytes), slice(r));
                await store.keep(r, bytes, fromCache);
            }
            assert.deepEqual(server.log.map((r) => [r.status, r.range]), [[206, '92160-102399'], [206, '0-10239'], [206, '10240-20479']]);
            // Range 0 used again (from the cache, no request), then range 2: the budget holds two
            // unpinned ranges, so range 1, the least recently used, leaves.
            const again = await store.get(range(0));
            assert.equal(again.fromCache, true);
            await store.keep(range(0), again.bytes, true);
            const two = await store.get(range(2));
            await store.keep(range(2), two.bytes, two.fromCache);
            assert.equal(server.log.length, 4);
            assert.equal(store.cachedBytes, 30 * KB);
            assert.equal((await store.get(range(1))).fromCache, false);  // evicted: asked again
            assert.equal((await store.get(pinned)).fromCache, true);
            assert.equal(store.requests, 5);
            assert.equal(store.bytesFetched, 50 * KB);
            await store.save();

            // A later visit starts from the saved list: no request for what it lists; a range
            // cached but not listed (a visit that ended mid-look) is deleted.
            const cache = await cacheStorage.open('earshot-data-v1');
            const stray = `${server.url}index/songs.esb?lazy-bytes=40960-51199`;
            await cache.put(stray, new Response(slice(range(4))));
            const later = storeOf(server, cacheStorage, 25 * KB);
            await later.open();
            assert.equal(later.cachedBytes, 30 * KB);
            assert.equal(await cache.match(stray), undefined);
            for (const k of [9, 0, 2]) assert.equal((await later.get(range(k))).fromCache, true, `range ${k}`);
            assert.equal(server.log.length, 5);
            // A cached range the core refused is forgotten and fetched again.
            await later.forget(range(0));
            assert.equal((await later.get(range(0))).fromCache, false);
        });
    });

    test('a server that ignores Range is a fatal "range-unsupported" error; offline, an uncached range is a "network" error at once', async () => {
        await withServerAt(dir, { ignoreRange: ['/index/songs.esb'] }, async (server) => {
            const store = storeOf(server, new MemoryCacheStorage(), 25 * KB, { baseDelayMs: 1 });
            await assert.rejects(store.get(range(3)), (e) => e.code === 'range-unsupported' && e.fatal &&
                /sent all of songs\.esb when asked for bytes 30720–40959: a lazy index needs a server that answers HTTP Range requests/.test(e.message));
            assert.equal(server.log.length, 1);  // not retried
        });
        await withServerAt(dir, {}, async (server) => {
            server.setOffline(true);
            const store = storeOf(server, new MemoryCacheStorage(), 25 * KB, { baseDelayMs: 1 });
            await assert.rejects(store.get(range(3)), (e) => e.code === 'network' && !e.fatal);
            assert.equal(server.log.length, 2);  // one retry at most: a person is waiting
        });
    });

    test('a 206 of another range than asked is refused as "index-corrupt" (not fatal)', async () => {
        await withServerAt(dir, {}, async (server) => {
            const fetchImpl = (url, init) => {
                const asked = init?.headers?.Range?.replace(/=(\d+)-/, (_, start) => `=${Number(start) + 1}-`);
                return fetch(url, asked ? { ...init, headers: { ...init.headers, Range: asked } } : init);
            };
            const store = storeOf(server, new MemoryCacheStorage(), 25 * KB, { fetchImpl });
            await assert.rejects(store.get(range(1)), (e) => e.code === 'index-corrupt' && !e.fatal &&
                /answered Content-Range: bytes 10241-20479\/102400 to a request for bytes 10240–20479 of songs\.esb/.test(e.message));
        });
    });
});

describe('scripts/serve.mjs: a file too large to read whole', () => {
    test('a Range of a 65 MB file is read on its own; a whole GET streams it; ETag from size and time', async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-serve-large-'));
        try {
            fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
            const bytes = Buffer.alloc(65 * 1024 * 1024);
            crypto.randomFillSync(bytes, 40_000_000, 4096);
            fs.writeFileSync(path.join(dir, 'big.bin'), bytes);
            await withServerAt(dir, {}, async (server) => {
                const part = await fetch(`${server.url}big.bin`, { headers: { Range: 'bytes=40000000-40004095' } });
                assert.equal(part.status, 206);
                assert.equal(part.headers.get('content-range'), `bytes 40000000-40004095/${bytes.length}`);
                assert.match(part.headers.get('etag'), /^"[0-9a-f]+-[0-9a-f]+"$/);
                assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(40_000_000, 40_004_096));
                const whole = await fetch(`${server.url}big.bin`);
                assert.equal(whole.status, 200);
                assert.ok(Buffer.from(await whole.arrayBuffer()).equals(bytes));
                const again = await fetch(`${server.url}big.bin`, { headers: { 'If-None-Match': part.headers.get('etag') } });
                assert.equal(again.status, 304);
                assert.deepEqual(server.log.map((r) => [r.status, r.responseBytes]), [[206, 4096], [200, bytes.length], [304, 0]]);
            });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
