// Browser end-to-end tests: Debian's chromium (headless, via playwright-core) opens the built
// demo (out/site, served by scripts/serve.mjs on 127.0.0.1) with a fake microphone playing a
// WAV clip, and the tests read what a person would see.
// Needs: scripts/demo.sh --build-only (WASM, demo index, site).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { startServer } from '../scripts/serve.mjs';
import {
    buildIndex, catalog, cliPath, containerMeta, indexShards, launchChromium, makeClip, makeListenClip, requireSite, resultsDir,
    siteDir, writeWavFloat,
} from './helpers.mjs';

// Noise added to the clips (dB SNR). EARSHOT_E2E_SNR_DB=none plays clean clips: a diagnostic
// for the audio path with the random-init model, which recognizes only near-exact audio.
const SNR_DB = process.env.EARSHOT_E2E_SNR_DB === 'none' ? undefined : Number(process.env.EARSHOT_E2E_SNR_DB ?? 10);
const MATCH_TIMEOUT_MS = 45_000;    // index + up to listen-seconds (15) of audio, on a slow CI machine
// Page vs CLI: a listen shorter than every clip played, so the page answers on audio the fake
// microphone played once (the comparison uses the very samples the page heard in any case).
const AGREE_LISTEN_SECONDS = 8;
// The page and `earshot query --live` run the same C++ (the music gate and the listen rule of
// core/listen.h) on the same samples (WASM SIMD128 in the page, the same kernels built for x86
// in the CLI), so they answer the same song at the same look. Scores may differ in the last bits
// (each C library has its own log() in the front-end): 1e-4 of a cosine similarity is far above
// that and far below any score gap that changes a decision. Such a difference could at most
// move a look that sits exactly on its threshold, so the answer may come one look (one query
// hop) earlier or later: answer_s agrees within one query hop. At the same look, positions are
// sums of the same exact terms (index hops, sample counts) and agree to rounding (1 ms, while
// another alignment would be off by a whole index hop); at a neighbouring look the window is
// aligned anew, on the index's grid: within one index hop.
const AGREE_POSITION_S = 0.001;
const AGREE_SCORE = 1e-4;
// The worklet sends ~64 ms chunks; the Worker stops pushing after the chunk the core answered in.
const WORKLET_CHUNK_S = 0.064;

let info;
let shards;
/** the song the recognition tests play, and the shard holding it */
let target;
let clips;

before(() => {
    info = requireSite();
    shards = indexShards();
    if (info.random_init) {
        console.warn('e2e: WARNING: the site uses a random-init model; noisy clips will not be recognized reliably.');
    }
    // The song in the first shard: recognition works as soon as that shard is loaded. In the
    // demo index that is "Music Ending", the one song that does not loop (the game tracks
    // repeat every ~77 s / ~162 s, so a position in them is ambiguous).
    const song = shards[0].songs[0];
    const row = catalog('hex-a-hop-data').find((r) => r.id === song.id);
    assert.ok(row, `song ${song.id} of the index is not in the hex-a-hop-data catalog`);
    const startS = Math.min(30, Math.max(0, song.duration_s / 2 - 10));
    target = { ...song, what: shards[0].what, path: row.path, startS };
    const other = catalog('powermanga-data')[0];
    fs.mkdirSync(resultsDir, { recursive: true });
    clips = {
        // 20 s so the fake microphone does not loop within the listening window.
        indexed: makeClip({ source: row.path, startS, seconds: 20, snrDb: SNR_DB, out: path.join(resultsDir, 'clip-indexed.wav') }),
        notIndexed: makeClip({ source: other.path, startS: 20, seconds: 20, snrDb: SNR_DB, out: path.join(resultsDir, 'clip-not-indexed.wav') }),
    };
});

/**
 * Opens the demo (the site in `root`) in a fresh browser; records every request the browser
 * makes (page, workers, service worker) and every page error.
 */
/**
 * A copy of the demo site with another index: rebuilt by `earshot build` with `make`'s options
 * (the same songs and model), or written by `make(indexDir)`; remove() deletes it.
 * @param {string[] | ((indexDir: string) => void)} make
 */
function siteWithIndex(make) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-site-'));
    const root = path.join(tmp, 'site');
    const siteIndex = path.join(siteDir, 'index');
    fs.cpSync(siteDir, root, { recursive: true, filter: (src) => src !== siteIndex && !src.startsWith(siteIndex + path.sep) });
    if (typeof make === 'function') make(path.join(root, 'index'));
    else buildIndex(path.join(root, 'index'), make);
    return { root, remove: () => fs.rmSync(tmp, { recursive: true, force: true }) };
}

/** Serves `root` (with `faults`) and opens `page` of it (default: the demo app) in Chromium. */
async function openDemo({ audioFile, denyMicrophone = false, faults = {}, root = siteDir, page: pagePath = '' }) {
    const server = await startServer({ root, faults });
    const browser = await launchChromium({ audioFile, denyMicrophone });
    const requests = [];
    const pageErrors = [];
    browser.context.on('request', (r) => requests.push({
        url: r.url(), method: r.method(), body: r.postDataBuffer(), resourceType: r.resourceType(),
    }));
    const page = browser.context.pages()[0] ?? await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(new Error(`console: ${m.text()}`)); });
    await page.goto(server.url + pagePath);
    const el = page.locator('earshot-recognizer');
    return {
        server, browser, page, requests, pageErrors, el,
        close: async () => {
            await browser.close();
            await server.close();
        },
    };
}

/** Waits for the first shard (Listen enabled). */
async function waitReady(demo) {
    await demo.el.locator('button.listen:not([disabled])').waitFor({ timeout: 30_000 });
}

// Reloads the page (online) and waits until the index is loaded: not one byte of the index or
// the model may come over the network, everything from the cache.
async function reloadFromCache(demo) {
    const before = demo.server.log.length;
    await demo.page.reload();
    await waitReady(demo);
    await demo.el.locator('.status[data-done="true"]').waitFor({ timeout: 30_000 });
    const second = demo.server.log.slice(before);
    const dataDownloads = second.filter((r) => (r.path.startsWith('/index/') || r.path.startsWith('/models/')) && r.responseBytes > 0);
    assert.deepEqual(dataDownloads, [], 'second visit downloaded index/model bytes');
}

async function listenForMatch(demo) {
    await waitReady(demo);
    const t0 = Date.now();
    await demo.el.locator('button.listen').click();
    const outcome = await Promise.race([
        demo.el.locator('.result:not([hidden]) .result-title').waitFor({ timeout: MATCH_TIMEOUT_MS }).then(() => 'match'),
        demo.el.locator('.nomatch:not([hidden])').waitFor({ timeout: MATCH_TIMEOUT_MS }).then(() => 'nomatch'),
    ]);
    return { outcome, seconds: (Date.now() - t0) / 1000 };
}

/**
 * In the open page: a recognizer created with `options` (keepListenAudio added), its whole index
 * loaded (format 1 and 2: every shard, as the CLI has, since a song still downloading would
 * change the answer), one listen, and its answer with the audio the recognizer heard.
 * @returns {Promise<{type: 'match' | 'nomatch', detail: any, progress: any, samples: Float32Array, sampleRateHz: number}>}
 */
async function listenInPage(demo, options) {
    const answer = await demo.page.evaluate(async (recognizerOptions) => {
        const { createRecognizer } = await import('./earshot.js');
        const r = await createRecognizer({ ...recognizerOptions, keepListenAudio: true });
        const progress = await new Promise((resolve) => {
            if (r.progress?.done) resolve(r.progress);
            r.addEventListener('progress', (e) => { if (e.detail.done) resolve(e.detail); });
        });
        const outcome = new Promise((resolve) => {
            r.addEventListener('match', (e) => resolve({ type: 'match', detail: e.detail }));
            r.addEventListener('nomatch', (e) => resolve({ type: 'nomatch', detail: e.detail }));
        });
        await r.start();
        const { type, detail } = await outcome;
        r.destroy();
        const { audio, ...rest } = detail;
        const bytes = new Uint8Array(audio.samples.buffer, audio.samples.byteOffset, audio.samples.byteLength);
        let binary = '';
        for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return { type, detail: rest, progress, sampleRateHz: audio.sampleRateHz, audioBase64: btoa(binary) };
    }, options);
    assert.deepEqual(demo.pageErrors.map(String), []);
    const bytes = Buffer.from(answer.audioBase64, 'base64');
    const samples = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    return { type: answer.type, detail: answer.detail, progress: answer.progress, samples, sampleRateHz: answer.sampleRateHz };
}

/**
 * Plays `audioFile` through the fake microphone into the library the demo uses, with the whole
 * index loaded, until the recognizer answers; returns its answer and the audio it heard.
 */
async function pageAnswer(audioFile) {
    const demo = await openDemo({ audioFile });
    try {
        return await listenInPage(demo, { indexUrl: 'index/', modelUrl: 'models/earshot.emod', maxListenSeconds: AGREE_LISTEN_SECONDS });
    } finally {
        await demo.close();
    }
}

/** `earshot query --live` (same model, same index, our SIMD kernels) on one WAV file: its JSON line. */
function cliAnswer(wavFile) {
    const out = execFileSync(cliPath, [
        'query', '--live', '--backend', 'simd', '--quiet', '--model', path.join(siteDir, 'models/earshot.emod'),
        '--index', path.join(siteDir, 'index'), wavFile,
    ], { encoding: 'utf8' });
    return JSON.parse(out.trim());
}

/** The model's query hop and index hop, seconds (model metadata). */
function modelHops() {
    const meta = containerMeta(path.join(siteDir, 'models/earshot.emod'));
    const frameS = meta.hop_length / meta.sample_rate_hz;
    return { queryHopS: meta.query_hop_frames * frameS, indexHopS: meta.hop_frames * frameS };
}

describe('earshot in the browser', { concurrency: false }, () => {
    test('the demo loads with a strict CSP, shows the index status and looks clean', async () => {
        const demo = await openDemo({ audioFile: clips.indexed.path });
        try {
            await waitReady(demo);
            const response = await demo.page.request.get(demo.server.url);
            const csp = response.headers()['content-security-policy'];
            assert.match(csp, /connect-src 'self'/);
            assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
            assert.doesNotMatch(csp, /unsafe-inline|'unsafe-eval'/);
            await demo.el.locator('.status[data-done="true"]').waitFor({ timeout: 30_000 });
            const status = await demo.el.locator('.status-text').textContent();
            assert.match(status, new RegExp(`${info.index_songs} of ${info.index_songs} songs`));
            assert.match(status, new RegExp(`${info.index_shards}/${info.index_shards} (shards|blocks)`));
            // Installable PWA: Chromium offers installation only with a valid web app manifest,
            // icons and a service worker with a fetch handler.
            await demo.page.locator('#install').waitFor({ state: 'visible', timeout: 15_000 });
            await demo.page.screenshot({ path: path.join(resultsDir, 'demo-ready.png'), fullPage: true });
            assert.deepEqual(demo.pageErrors.map(String), []);
        } finally {
            await demo.close();
        }
    });

    test('a noisy clip of an indexed song is recognized: title, album, position, confidence', async () => {
        const demo = await openDemo({ audioFile: clips.indexed.path });
        try {
            const { outcome, seconds } = await listenForMatch(demo);
            await demo.page.screenshot({ path: path.join(resultsDir, 'demo-match.png'), fullPage: true });
            assert.equal(outcome, 'match', `expected a match within ${MATCH_TIMEOUT_MS / 1000} s`);
            assert.equal(await demo.el.locator('.result-title').textContent(), target.title);
            assert.equal(await demo.el.locator('.result-album').textContent(), target.album);
            const [m, s] = (await demo.el.locator('.result-position').textContent()).split(':').map(Number);
            const position = 60 * m + s;
            // The clip starts at startS and loops every 20 s; the position is where the song is now.
            assert.ok(position >= target.startS - 2 && position <= target.startS + 22,
                `position ${position} s, clip covers ${target.startS}..${target.startS + 20} s`);
            assert.match(await demo.el.locator('.result-confidence').textContent(), /^\d+%$/);
            console.log(`e2e: matched "${target.title}" at ${position} s after ${seconds.toFixed(1)} s`);
            assert.deepEqual(demo.pageErrors.map(String), []);
        } finally {
            await demo.close();
        }
    });

    test('a song that is not in the index shows "No match"', async () => {
        const demo = await openDemo({ audioFile: clips.notIndexed.path });
        try {
            const { outcome } = await listenForMatch(demo);
            await demo.page.screenshot({ path: path.join(resultsDir, 'demo-nomatch.png'), fullPage: true });
            assert.equal(outcome, 'nomatch', `a song of another package was "recognized" as ${await demo.el.locator('.result-title').textContent()}`);
            assert.equal(await demo.el.locator('.result').isHidden(), true);
        } finally {
            await demo.close();
        }
    });

    test('offline: after one visit, a reload without network still recognizes (and a second visit downloads no index or model)', async () => {
        const demo = await openDemo({ audioFile: clips.indexed.path });
        try {
            await waitReady(demo);
            await demo.el.locator('.status[data-offline="true"]').waitFor({ timeout: 30_000 });
            assert.match(await demo.el.locator('.status-text').textContent(), /offline-ready/);

            // Second visit, online: the index and the model come from the cache.
            await reloadFromCache(demo);

            // Offline twice over: the browser's emulation, and a server that drops every
            // connection, because Chromium's service-worker update check of /sw.js escapes
            // Playwright's emulation (a real network that is down refuses it the same way).
            await demo.browser.context.setOffline(true);
            demo.server.setOffline(true);
            const beforeOffline = demo.server.log.length;
            await demo.page.reload();
            const { outcome } = await listenForMatch(demo);
            await demo.page.screenshot({ path: path.join(resultsDir, 'demo-offline.png'), fullPage: true });
            assert.deepEqual(demo.server.log.slice(beforeOffline).map((r) => r.path).filter((p) => p !== '/sw.js'), [],
                'the app asked the network for more than the service worker update check while offline');
            assert.equal(outcome, 'match');
            assert.equal(await demo.el.locator('.result-title').textContent(), target.title);
        } finally {
            await demo.close();
        }
    });

    test('a tampered block is rejected with a visible error; the other blocks keep working', async () => {
        assert.ok(shards.length >= 2, 'the demo index needs 2+ blocks for this test');
        // serve.mjs flips the middle byte of songs.esb: the block holding it is the bad one.
        const middle = Math.floor((shards.at(-1).offset + shards.at(-1).bytes.length) / 2);
        const bad = shards.findIndex((b) => b.offset <= middle && middle < b.offset + b.bytes.length);
        assert.notEqual(shards[bad].what, target.what);
        const demo = await openDemo({ audioFile: clips.indexed.path, faults: { tamper: [`/index/${shards[bad].file}`] } });
        try {
            const error = demo.el.locator('.error[data-code="shard-corrupt"]');
            await error.waitFor({ timeout: 30_000 });
            assert.match(await error.textContent(), new RegExp(`Block ${bad} of songs\\.esb .*rejected`));
            await demo.el.locator('.status[data-done="true"]').waitFor({ timeout: 30_000 });
            assert.match(await demo.el.locator('.status-text').textContent(), /1 rejected/);
            const { outcome } = await listenForMatch(demo);
            await demo.page.screenshot({ path: path.join(resultsDir, 'demo-corrupt-shard.png'), fullPage: true });
            assert.equal(outcome, 'match');
            assert.equal(await demo.el.locator('.result-title').textContent(), target.title);
            assert.deepEqual(demo.pageErrors.map(String), []);
        } finally {
            await demo.close();
        }
    });

    test('a memory limit the model does not fit in is a clean fatal error, and the page can create the recognizer again', async () => {
        const demo = await openDemo({ audioFile: clips.indexed.path });
        try {
            const result = await demo.page.evaluate(async () => {
                const { createRecognizer } = await import('./earshot.js');
                const options = { indexUrl: 'index/', modelUrl: 'models/earshot.emod' };
                const small = await createRecognizer({ ...options, memoryLimitMB: 4 });
                const refused = await small.ready.then(() => null, (e) => ({ code: e.code, message: e.message }));
                small.destroy();
                const again = await createRecognizer(options);
                const ready = await again.ready;
                again.destroy();
                return { refused, songsLoaded: ready.songsLoaded };
            });
            assert.equal(result.refused?.code, 'out-of-memory');
            assert.match(result.refused.message, /Not enough memory to load the model: loading it takes .* may use 4\.0 MB/);
            assert.ok(result.songsLoaded > 0);
            assert.deepEqual(demo.pageErrors.map(String), []);
        } finally {
            await demo.close();
        }
    });

    test('progressive index, format 1: retried after 503s, ready (Listen enabled) with the first shard file while the next still downloads', async () => {
        // The site with its index rebuilt as format 1 (a file per shard, one song each).
        const site = siteWithIndex(['--format', '1', '--shard-mb', '0.01']);
        const shards = indexShards(path.join(site.root, 'index'));
        assert.ok(shards.length >= 2, 'the index needs 2+ shards for this test');
        const first = `/index/${shards[0].file}`;
        // Every later shard is held back, so the page must become ready on the first one alone.
        const later = Object.fromEntries(shards.slice(1).map((s) => [`/index/${s.file}`, 6000]));
        const demo = await openDemo({
            audioFile: clips.indexed.path, faults: { failTimes: { [first]: 2 }, delayMs: later }, root: site.root,
        });
        try {
            await waitReady(demo);
            const status = await demo.el.locator('.status-text').textContent();
            assert.match(status, new RegExp(`1/${shards.length} shards`), `status when ready: ${status}`);
            assert.match(status, /loading/);
            await demo.el.locator('.status[data-done="true"]').waitFor({ timeout: 30_000 });
            assert.match(await demo.el.locator('.status-text').textContent(), new RegExp(`${shards.length}/${shards.length} shards`));
            const firstRequests = demo.server.log.filter((r) => r.path === first).map((r) => r.status);
            assert.deepEqual(firstRequests, [503, 503, 200]);
        } finally {
            await demo.close();
            site.remove();
        }
    });

    test('a denied microphone gives a clear message and the app keeps working', async () => {
        const demo = await openDemo({ audioFile: clips.indexed.path, denyMicrophone: true });
        try {
            await waitReady(demo);
            await demo.el.locator('button.listen').click();
            const error = demo.el.locator('.error[data-code="mic-denied"]');
            await error.waitFor({ timeout: 15_000 });
            assert.match(await error.textContent(), /Microphone access was denied/);
            await demo.page.screenshot({ path: path.join(resultsDir, 'demo-mic-denied.png'), fullPage: true });
            // Still usable: the button is back to "Listen".
            assert.equal(await demo.el.locator('.listen-label').textContent(), 'Listen');
            assert.equal(await demo.el.locator('button.listen').isEnabled(), true);
        } finally {
            await demo.close();
        }
    });

    test('at the device rate (48 kHz AudioContext) the Worker resamples and the right song is found', async () => {
        // A clean clip and a 16-embedding (8 s) window: a check of the audio path (capture,
        // worklet, transfer, resampling) that holds even with the random-init model.
        const clean = makeClip({ source: target.path, startS: target.startS, seconds: 20, out: path.join(resultsDir, 'clip-clean.wav') });
        const demo = await openDemo({ audioFile: clean.path });
        try {
            const result = await demo.page.evaluate(async () => {
                const { createRecognizer } = await import('./earshot.js');
                const r = await createRecognizer({
                    indexUrl: 'index/', modelUrl: 'models/earshot.emod', audioContextSampleRate: 'device',
                    recognizerParams: { min_query_embeddings: 16, max_query_embeddings: 16 },
                });
                await r.ready;
                let sampleRate = 0;
                r.addEventListener('listening', (e) => { if (e.detail.listening) sampleRate = e.detail.sampleRate; });
                const outcome = new Promise((resolve) => {
                    r.addEventListener('match', (e) => resolve(e.detail));
                    r.addEventListener('nomatch', () => resolve(null));
                });
                await r.start();
                const match = await outcome;
                r.destroy();
                return { sampleRate, match };
            });
            assert.notEqual(result.sampleRate, 16000, 'the AudioContext ran at the model rate: nothing was resampled');
            assert.ok(result.match, 'no match');
            assert.equal(result.match.title, target.title);
            const expected = target.startS + result.match.listenedSeconds;
            assert.ok(Math.abs(result.match.offsetSeconds - expected) < 2.5,
                `position ${result.match.offsetSeconds.toFixed(1)} s, expected about ${expected.toFixed(1)} s`);
        } finally {
            await demo.close();
        }
    });

    test('the page answers as `earshot query --live` does on the same audio (in the index, not in it, after a lead-in)', async () => {
        assert.ok(fs.existsSync(cliPath), `${cliPath} is missing: build the CLI (make native) or set BUILD`);
        const { queryHopS, indexHopS } = modelHops();
        // Listens as people make them: the tap, then the phone brought to the music. Quiet room
        // noise (-55 dBFS) for 2 s, then the indexed song with noise at SNR_DB; and 1 s of digital
        // silence first.
        const leadIn = makeListenClip({
            parts: [{ seconds: 2, noiseDbfs: -55 }, { source: target.path, startS: target.startS, seconds: 12 }],
            snrDb: SNR_DB === undefined ? undefined : { of: 'music', db: SNR_DB }, out: path.join(resultsDir, 'clip-lead-in.wav'),
        });
        const silenceFirst = makeClip({
            source: target.path, startS: target.startS, seconds: 11, silenceS: 1, out: path.join(resultsDir, 'clip-silence-first.wav'),
        });
        const cases = [
            { name: 'indexed', file: clips.indexed.path, expected: 'match' },
            { name: 'not-indexed', file: clips.notIndexed.path, expected: 'nomatch' },
            { name: 'lead-in', file: leadIn.path, expected: 'match' },
            { name: 'silence-first', file: silenceFirst.path, expected: 'match' },
        ];
        for (const c of cases) {
            const page = await pageAnswer(c.file);
            const heardS = page.samples.length / page.sampleRateHz;
            const answerS = page.detail.listenedSeconds;
            // The page's figures describe exactly the audio it returned: the core answered in the
            // last chunk pushed (a one-shot nomatch comes at the first look past the listen length).
            assert.ok(answerS <= heardS + 1e-9 && heardS - answerS < WORKLET_CHUNK_S + 1e-6,
                `${c.name}: answered at ${answerS} s, audio ${heardS} s`);
            if (page.type === 'nomatch') {
                assert.ok(answerS >= AGREE_LISTEN_SECONDS && answerS < AGREE_LISTEN_SECONDS + queryHopS,
                    `${c.name}: nomatch at ${answerS} s, the listen length is ${AGREE_LISTEN_SECONDS} s`);
            }
            const heard = path.join(resultsDir, `heard-${c.name}.wav`);
            writeWavFloat(heard, page.samples, page.sampleRateHz);
            const cli = cliAnswer(heard);
            const position = page.type === 'match' ? page.detail.offsetSeconds - answerS : null;
            console.log(`e2e: ${c.name}: the page says ${page.detail.id ?? 'no match'} at ${answerS.toFixed(3)} s ` +
                `(score ${page.detail.score}, song time at the start ${position}), the CLI ${cli.song ?? 'no match'} ` +
                `at ${cli.answer_s} s (score ${cli.score}, offset_s ${cli.offset_s})`);
            assert.equal(page.type, cli.song === null ? 'nomatch' : 'match', `${c.name}: the page and the CLI disagree`);
            if (page.type === 'match') {
                assert.equal(page.detail.id, cli.song, c.name);
                assert.equal(page.detail.returned, false, c.name);
                const lookApartS = Math.abs(answerS - cli.answer_s);
                assert.ok(lookApartS <= queryHopS + 1e-6, `${c.name}: answer_s ${answerS} vs the CLI's ${cli.answer_s}`);
                const sameLook = lookApartS < 1e-6;
                // The page reports where the song is at its answer; the CLI where it was at the
                // start of the clip.
                const tolerance = sameLook ? AGREE_POSITION_S : indexHopS + AGREE_POSITION_S;
                assert.ok(Math.abs(position - cli.offset_s) <= tolerance,
                    `${c.name}: song time at the start ${position} s (${page.detail.offsetSeconds} - ${answerS}), the CLI's ${cli.offset_s} s`);
                if (sameLook) assert.ok(Math.abs(page.detail.score - cli.score) <= AGREE_SCORE, `${c.name}: score ${page.detail.score} vs ${cli.score}`);
                assert.ok(page.detail.score >= page.detail.threshold, `${c.name}: score ${page.detail.score} < ${page.detail.threshold}`);
            } else {
                assert.equal(cli.answer_s, null, c.name);
            }
            // Both answers are exercised: the clips of the indexed song are recognized, the other is not.
            assert.equal(page.type, c.expected, `${c.name}: expected ${c.expected}`);
            if (c.expected === 'match') assert.equal(page.detail.id, target.id, c.name);
        }
    });

    test('continuous mode: song A, a gap of room noise, song B give match A, music-stopped, match B', async () => {
        // Two songs of the demo index, each in its own shard (all loaded before the listen).
        const songA = target;
        const songB = shards.flatMap((s) => s.songs).find((s) => s.id !== songA.id);
        assert.ok(songB, 'the demo index has a second song');
        const rowB = catalog('hex-a-hop-data').find((r) => r.id === songB.id);
        const startB = Math.min(20, Math.max(0, songB.duration_s - 15));
        // The gap: 9 s of quiet room noise (-70 dBFS), longer than it takes to report the music
        // stopping: the gate closes about 2.5 s after the music (2 s of patches without music,
        // a patch spans ~1 s) and the stop is confirmed 5 s later (stop_confirm_s).
        const clip = makeListenClip({
            parts: [
                { source: songA.path, startS: songA.startS, seconds: 12 },
                { seconds: 9, noiseDbfs: -70 },
                { source: rowB.path, startS: startB, seconds: 14 },
            ],
            snrDb: SNR_DB === undefined ? undefined : { of: 'music', db: SNR_DB },
            out: path.join(resultsDir, 'clip-continuous.wav'),
        });
        const [, gapStartS, bStartS] = clip.partStartsS;
        const demo = await openDemo({ audioFile: clip.path });
        try {
            const events = await demo.page.evaluate(async ({ songB: idB, timeoutMs }) => {
                const { createRecognizer } = await import('./earshot.js');
                const r = await createRecognizer({ indexUrl: 'index/', modelUrl: 'models/earshot.emod', continuous: true });
                await new Promise((resolve) => {
                    if (r.progress?.done) resolve(undefined);
                    r.addEventListener('progress', (e) => { if (e.detail.done) resolve(undefined); });
                });
                const seen = [];
                const done = new Promise((resolve) => {
                    for (const type of ['match', 'nomatch', 'music-stopped', 'error']) {
                        r.addEventListener(type, (e) => {
                            const { audio, ...detail } = e.detail;
                            seen.push({ type, ...detail });
                            if (type === 'match' && detail.id === idB) resolve(undefined);
                        });
                    }
                    setTimeout(resolve, timeoutMs);
                });
                await r.start();
                await done;
                const stillListening = r.listening;
                r.destroy();
                return { seen, stillListening };
            }, { songB: songB.id, timeoutMs: 45_000 });
            console.log(`e2e: continuous: ${events.seen.map((e) => `${e.type}${e.id ? ` ${e.id}` : ''} at ${e.listenedSeconds?.toFixed(2)} s`).join(', ')}`);
            assert.deepEqual(demo.pageErrors.map(String), []);
            assert.equal(events.stillListening, true, 'a continuous listen stopped by itself');
            assert.deepEqual(events.seen.map((e) => [e.type, e.id ?? null]),
                [['match', songA.id], ['music-stopped', null], ['match', songB.id]]);
            const [matchA, stopped, matchB] = events.seen;
            assert.equal(matchA.returned, false);
            assert.equal(matchB.returned, false);
            // In time order, each within its part of the clip (the fake microphone may start a
            // little into the file: up to ~1 s).
            assert.ok(matchA.listenedSeconds < gapStartS + 1, `match A at ${matchA.listenedSeconds} s`);
            assert.ok(stopped.listenedSeconds > gapStartS - 1 && stopped.listenedSeconds < bStartS + 1,
                `music-stopped at ${stopped.listenedSeconds} s, the gap is ${gapStartS}-${bStartS} s`);
            assert.ok(matchB.listenedSeconds > bStartS - 1, `match B at ${matchB.listenedSeconds} s, B starts at ${bStartS} s`);
            const expectedA = songA.startS + matchA.listenedSeconds;
            assert.ok(Math.abs(matchA.offsetSeconds - expectedA) < 2.5,
                `position in A ${matchA.offsetSeconds.toFixed(1)} s, expected about ${expectedA.toFixed(1)} s`);
        } finally {
            await demo.close();
        }
    });

    test('the format 2 demo index: its blocks come in one Range request, the song is recognized, and a second visit downloads none of it', async () => {
        const manifest = JSON.parse(fs.readFileSync(path.join(siteDir, 'index/manifest.json'), 'utf8'));
        assert.equal(manifest.version, 2);
        const demo = await openDemo({ audioFile: clips.indexed.path });
        try {
            await demo.el.locator('.status[data-done="true"]').waitFor({ timeout: 30_000 });
            const status = await demo.el.locator('.status-text').textContent();
            assert.match(status, new RegExp(`${manifest.songs} of ${manifest.songs} songs`));
            assert.match(status, new RegExp(`${manifest.blocks.count}/${manifest.blocks.count} blocks`));
            // Every block in one Range request (206), through the service worker when it runs.
            const ranges = demo.server.log.filter((r) => r.path === '/index/songs.esb').map((r) => [r.status, r.range]);
            assert.deepEqual(ranges, [[206, `0-${manifest.blocks.bytes - 1}`]]);
            const { outcome } = await listenForMatch(demo);
            assert.equal(outcome, 'match');
            assert.equal(await demo.el.locator('.result-title').textContent(), target.title);

            await reloadFromCache(demo);
            assert.match(await demo.el.locator('.status-text').textContent(), /offline-ready/);
            assert.deepEqual(demo.pageErrors.map(String), []);
        } finally {
            await demo.close();
        }
    });

    test('a format 2 index whose lists do not fit the memory limit is refused at its directory, before any block downloads', async () => {
        // 1000 synthetic songs of 720 windows for the site's model, 32 bytes a window: a 27 KB
        // directory whose lists reserve about 29 MB when added, under a 32 MB limit the model and
        // quantizer fit.
        const site = siteWithIndex((indexDir) => execFileSync(path.join(path.dirname(cliPath), '../bench/earshot_make_synthetic_index'),
            [path.join(siteDir, 'models/earshot.emod'), '1000', '720', indexDir, '--format', '2', '--pq-m', '32'], { stdio: 'ignore' }));
        // A page of the site without the demo app (whose own recognizer would load the index):
        // only the recognizer created below asks the server for anything of the index.
        fs.writeFileSync(path.join(site.root, 'bare.html'), '<!doctype html><title>earshot</title><link rel="icon" href="icons/icon.svg" type="image/svg+xml">\n');
        const demo = await openDemo({ audioFile: clips.indexed.path, root: site.root, page: 'bare.html' });
        try {
            const refused = await demo.page.evaluate(async () => {
                const { createRecognizer } = await import('./earshot.js');
                const r = await createRecognizer({ indexUrl: 'index/', modelUrl: 'models/earshot.emod', memoryLimitMB: 32 });
                const error = await r.ready.then(() => null, (e) => ({ code: e.code, message: e.message, fatal: e.fatal }));
                r.destroy();
                return error;
            });
            assert.equal(refused?.code, 'out-of-memory', JSON.stringify(refused));
            assert.match(refused.message, /Not enough memory to load directory\.ed: loading it takes (\d+\.\d) MB.* may use 32\.0 MB/);
            assert.ok(Number(/takes (\d+\.\d) MB/.exec(refused.message)[1]) > 25, refused.message);
            const asked = demo.server.log.map((r) => r.path);
            assert.ok(asked.includes('/index/directory.ed'), `the directory was not fetched: ${asked}`);
            assert.ok(!asked.includes('/index/songs.esb'), 'a block was downloaded');
            assert.deepEqual(demo.pageErrors.map(String), []);
        } finally {
            await demo.close();
            site.remove();
        }
    });

    test('lazy mode: a 100 003-song index; a listen fetches only the ranges it needs (body-less GETs answered 206), answers as `earshot query --live --lazy` on the audio it heard, a later recognizer starts from the cached ranges, a hot tier answers without a request, and offline a listen says it needs the network', async () => {
        // The demo's songs among 100 000 synthetic ones (bench/make_scale_index.cc), with the
        // pair-key level a lazy client needs: 1.2 GB, written in about 35 s.
        const site = siteWithIndex((indexDir) => execFileSync(path.join(path.dirname(cliPath), '../bench/earshot_make_scale_index'), [
            '--model', path.join(siteDir, 'models/earshot.emod'), '--real', path.join(siteDir, 'index'),
            '--source', path.join(siteDir, 'index'), '--songs', '100000', '--pair-keys', '2', '--out', indexDir], { stdio: 'ignore' }));
        fs.writeFileSync(path.join(site.root, 'bare.html'), '<!doctype html><title>earshot</title><link rel="icon" href="icons/icon.svg" type="image/svg+xml">\n');
        const demo = await openDemo({ audioFile: clips.indexed.path, root: site.root, page: 'bare.html' });
        try {
            const lazyFiles = ['songs.esb', 'pairs.ekd', 'pairs.ekp', 'directory-pages.edp'];
            const sizes = Object.fromEntries(lazyFiles.map((f) => [f, fs.statSync(path.join(site.root, 'index', f)).size]));
            const options = { indexUrl: 'index/', modelUrl: 'models/earshot.emod', indexMode: 'lazy' };
            const { type, detail, progress, samples, sampleRateHz } = await listenInPage(demo, options);
            // A later recognizer of the same page: what it needs up front is cached.
            const beforeLater = demo.server.log.length;
            const laterProgress = await demo.page.evaluate(async (recognizerOptions) => {
                const { createRecognizer } = await import('./earshot.js');
                const later = await createRecognizer(recognizerOptions);
                const done = await new Promise((resolve) => {
                    if (later.progress?.done) resolve(later.progress);
                    later.addEventListener('progress', (e) => { if (e.detail.done) resolve(e.detail); });
                });
                later.destroy();
                return done;
            }, options);
            // lazyParams the core does not take are a fatal 'config' error, before any range.
            const beforeRefused = demo.server.log.length;
            const refused = await demo.page.evaluate(async (recognizerOptions) => {
                const { createRecognizer } = await import('./earshot.js');
                const out = [];
                for (const lazyParams of [{ more_candidates: 'many' }, { no_such_key: 1 }, [0]]) {
                    const r = await createRecognizer({ ...recognizerOptions, lazyParams });
                    out.push(await r.ready.then(() => null, (e) => ({ code: e.code, fatal: e.fatal, message: e.message })));
                    r.destroy();
                }
                return out;
            }, options);
            assert.deepEqual(refused.map((e) => e?.code), ['config', 'config', 'config'], JSON.stringify(refused));
            assert.match(refused[0].message, /more_candidates must be a whole number/);
            assert.match(refused[1].message, /unknown key no_such_key/);
            assert.match(refused[2].message, /lazyParams must be an object/);
            assert.equal(demo.server.log.slice(beforeRefused).filter((r) => lazyFiles.some((f) => r.path === `/index/${f}`)).length, 0);
            assert.deepEqual(demo.pageErrors.map(String), []);
            assert.equal(progress.indexMode, 'lazy');
            assert.equal(progress.songsTotal, 100003);
            assert.equal(type, 'match', JSON.stringify(detail));
            assert.equal(detail.id, target.id);
            assert.ok(detail.lazy.requests > 0 && detail.lazy.bytes > 0, JSON.stringify(detail.lazy));

            // The CLI's lazy listen on the very samples the page heard: the same looks (the
            // core's lazy_look_due), so the same song, when, and where in it.
            const wav = path.join(resultsDir, 'lazy-heard.wav');
            writeWavFloat(wav, samples, sampleRateHz);
            const cli = JSON.parse(execFileSync(cliPath, ['query', '--quiet', '--lazy', '--live', '--backend', 'simd', '--model',
                path.join(siteDir, 'models/earshot.emod'), '--index', path.join(site.root, 'index'), wav], { encoding: 'utf8' }).trim());
            assert.equal(cli.song, detail.id);
            // A look comes after the piece of audio that completes its embedding: the page's
            // pieces start where the microphone's messages do, the CLI's every 0.25 s.
            assert.ok(Math.abs(cli.answer_s - detail.listenedSeconds) <= 0.25 + 1e-3,
                `page ${detail.listenedSeconds} s, CLI ${cli.answer_s} s`);
            assert.ok(cli.lazy.looks >= 1, JSON.stringify(cli.lazy));
            const { indexHopS } = modelHops();
            const pageStart = detail.offsetSeconds - detail.listenedSeconds;
            assert.ok(Math.abs(pageStart - cli.offset_s) <= indexHopS + AGREE_POSITION_S, `page ${pageStart} s, CLI ${cli.offset_s} s`);

            // Only ranges of the lazy files, each a 206; a small part of them in all.
            const lazyRequests = demo.server.log.filter((r) => lazyFiles.some((f) => r.path === `/index/${f}`));
            assert.ok(lazyRequests.length > 0);
            for (const r of lazyRequests) assert.equal(r.status, 206, `${r.path} ${r.range}`);
            for (const r of demo.server.log) {
                assert.equal(r.method, 'GET', `${r.method} ${r.path}`);
                assert.equal(r.requestBodyBytes, 0, `request with a body: ${r.path}`);
            }
            const served = lazyRequests.reduce((n, r) => n + r.responseBytes, 0);
            const total = Object.values(sizes).reduce((a, b) => a + b, 0);
            assert.ok(served < total / 10, `${served} of ${total} bytes`);
            // The later recognizer downloaded nothing of the index: the files it preloads and its
            // background blocks came from the cache.
            assert.ok(laterProgress.lazyCachedBytes >= detail.lazy.cachedBytes, JSON.stringify(laterProgress));
            for (const f of ['quantizer.eq', 'directory-pages.edh', 'pairs.ekh']) {
                assert.equal(demo.server.log.filter((r) => r.path === `/index/${f}` && r.responseBytes > 0).length, 1, f);
            }
            assert.ok(!demo.server.log.some((r) => r.path === '/index/directory.ed'), 'the whole directory was fetched');
            const background = progress.shardsLoaded;
            assert.ok(background > 0 && background === laterProgress.shardsLoaded, `${background} background blocks`);
            // Before the listen: the background blocks and their directory pages (fewer than blocks).
            const preloaded = lazyRequests.length - detail.lazy.requests;
            assert.ok(preloaded > background && preloaded <= 2 * background, `${preloaded} ranges before the listen`);
            assert.equal(demo.server.log.slice(beforeLater).filter((r) => lazyFiles.some((f) => r.path === `/index/${f}`)).length, 0);

            // With a hot tier (the demo's whole index, loaded first), the song is answered live
            // by the hot index, before the first look: no range of the lazy files is requested.
            fs.cpSync(path.join(siteDir, 'index'), path.join(site.root, 'hot'), { recursive: true });
            const before = demo.server.log.length;
            const hot = await listenInPage(demo, { ...options, hotIndexUrl: 'hot/' });
            assert.equal(hot.type, 'match', JSON.stringify(hot.detail));
            assert.equal(hot.detail.id, target.id);
            assert.equal(hot.progress.hotSongs, 3);
            assert.ok(hot.detail.listenedSeconds < 5, `answered after ${hot.detail.listenedSeconds} s: not by the hot tier`);
            assert.equal(hot.detail.lazy.requests, 0);
            const asked = demo.server.log.slice(before).filter((r) => lazyFiles.some((f) => r.path === `/index/${f}`));
            assert.deepEqual(asked, []);
            assert.ok(demo.server.log.slice(before).some((r) => r.path === '/hot/songs.esb'));
            // Offline with nothing of the listen cached: a non-fatal 'offline' error that says the
            // rest needs the network, and a nomatch that says so too.
            const offline = await demo.page.evaluate(async (recognizerOptions) => {
                await caches.delete('earshot-data-v1');
                const { createRecognizer } = await import('./earshot.js');
                const r = await createRecognizer(recognizerOptions);
                await new Promise((resolve) => {
                    if (r.progress?.done) resolve(undefined);
                    r.addEventListener('progress', (e) => { if (e.detail.done) resolve(undefined); });
                });
                globalThis.offlineRecognizer = r;
            }, options).then(async () => {
                demo.server.setOffline(true, '/index/');  // the app's own files still load
                return demo.page.evaluate(async () => {
                    const r = globalThis.offlineRecognizer;
                    const errors = [];
                    r.addEventListener('error', (e) => errors.push(e.detail));
                    const outcome = new Promise((resolve) => {
                        r.addEventListener('match', (e) => resolve({ type: 'match', detail: e.detail }));
                        r.addEventListener('nomatch', (e) => resolve({ type: 'nomatch', detail: e.detail }));
                    });
                    await r.start();
                    const answer = await outcome;
                    r.destroy();
                    return { ...answer, errors };
                });
            });
            demo.server.setOffline(false);
            assert.equal(offline.type, 'nomatch', JSON.stringify(offline));
            assert.equal(offline.detail.needsNetwork, true);
            assert.equal(offline.errors.length, 1, JSON.stringify(offline.errors));
            assert.equal(offline.errors[0].code, 'offline');
            assert.equal(offline.errors[0].fatal, false);
            assert.match(offline.errors[0].message, /not cached, and the network cannot be reached.*the rest needs the network/);
            console.log(`lazy e2e: ${progress.bytesLoaded} bytes preloaded (${background} background blocks); the listen: ` +
                `${detail.lazy.requests} requests, ${detail.lazy.bytes} bytes, answered after ${detail.listenedSeconds.toFixed(2)} s; ` +
                `${served} of ${total} bytes of the lazy files served in all; the hot tier answered after ` +
                `${hot.detail.listenedSeconds.toFixed(2)} s`);
        } finally {
            await demo.close();
            site.remove();
        }
    });

    test('privacy: a whole recognition makes only body-less GETs of the app, model and index', async () => {
        const demo = await openDemo({ audioFile: clips.indexed.path });
        try {
            await listenForMatch(demo);
            await demo.page.waitForTimeout(1000);
            const origin = new URL(demo.server.url).origin;
            assert.ok(demo.requests.length > 5, 'no requests were recorded');
            const siteFiles = new Set(['/', ...listSite()]);
            for (const r of demo.requests) {
                const url = new URL(r.url);
                assert.equal(r.method, 'GET', `${r.method} ${r.url}`);
                assert.equal(r.body, null, `request with a body: ${r.url}`);
                assert.equal(url.origin, origin, `request to another origin: ${r.url}`);
                assert.ok(siteFiles.has(url.pathname), `request for something that is not an app/model/index file: ${r.url}`);
            }
            for (const r of demo.server.log) {
                assert.equal(r.method, 'GET');
                assert.equal(r.requestBodyBytes, 0);
            }
        } finally {
            await demo.close();
        }
    });
});

/** URL paths of every file of the site. */
function listSite(dir = siteDir, prefix = '') {
    return fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).flatMap((e) => {
        const rel = `${prefix}/${e.name}`;
        return e.isDirectory() ? listSite(dir, rel) : [rel];
    });
}
