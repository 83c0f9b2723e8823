// Recognizer Worker: owns the WASM core (model, index, streaming recognizer) and the index
// download. Audio arrives from the AudioWorklet over a MessagePort, is resampled to the model
// rate when the AudioContext could not run at it, and is pushed to the recognizer here, off
// both the audio thread and the UI thread. The core decides everything: the recognizer runs in
// live mode (core/listen.h: the music gate, the listen rule, the listen length) and this Worker
// relays its listen events (Engine.pollEvent()) as they come. A one-shot listen ends with the
// core's 'match' or its 'nomatch' (after max_listen_s of audio); a continuous one reports each
// new song, a song that returns, and the music stopping, until the page stops it.
//
// Protocol (all messages are plain objects with a `type`):
//   main -> worker  {type: 'init', wasmGlueUrl, wasmUrl, indexUrl, modelUrl, backend, recognizerParams, retry,
//                    keepListenAudio, memoryLimitMB, indexMode, lazyCacheMB, lazyParams, hotIndexUrl}
//                   {type: 'audio-port', port}          MessagePort the worklet sends audio to
//                   {type: 'start', session, sampleRate, maxListenSeconds, continuous}
//                   {type: 'stop'}
//   worker -> main  {type: 'booted', wasmMs}
//                   {type: 'progress', ...IndexProgress}
//                   {type: 'ready', ...ReadyInfo}       first shard usable: recognition can run
//                   {type: 'match', session, ...MatchDetail} | {type: 'nomatch', session, ...NoMatchDetail}
//                   {type: 'music-stopped', session, ...MusicStoppedDetail}   (continuous only)
//                   (web/earshot.d.ts; with keepListenAudio, `audio` holds what the recognizer heard)
//                   {type: 'error', code, message, fatal, file}
//                   {type: 'stats', cpuMsPerAudioSecond, audioSeconds, hearsMusic, allocatedBytes, heapBytes}
//                                                       (every ~2 s of audio, and before a listen's end)
//
// indexMode 'lazy' (format 2 indexes built with --pair-keys; docs/SCALE.md, "Lazy answers"):
// the Worker downloads the quantizer, the block directory and the pair-key header once, then
// per listen only the byte ranges the core names (web/lazy-loader.js keeps them in the Cache
// API). The core's live listen runs as in the full mode (music gate, listen length) but does
// not match by itself; the Worker makes *looks* instead: when the music window holds its first
// pair of embeddings (about 3 s), half the query window, the whole window, then every half
// window more of music, and once at the end of the listen. A look pauses the audio (it waits
// in the backlog), fetches what the core names round by round, and answers with the core's
// clip decision (Engine.lazyResult()) on that window: a match ends the listen. Continuous
// listening needs the full index. With a hot tier (hotIndexUrl: a whole index of some of the
// songs, loaded first), the recognizer matches it live with the listen rule as in the full
// mode, and the looks cover the rest.

import { EarshotError } from './fetch-util.js';
import { IndexDownloader } from './index-loader.js';
import { DEFAULT_LAZY_CACHE_BYTES, LazyRangeStore } from './lazy-loader.js';
import { StreamingResampler } from './resampler.js';

const BACKLOG_SECONDS = 20;  // audio kept while the first shard is still downloading

/** @type {any} */ let wasm = null;   // the Emscripten module
/** @type {any} */ let engine = null; // its Engine (model + index + recognizer)
let modelRateHz = 16000;
let backend = 'simd';
/** @type {Record<string, unknown>} */ let recognizerParams = {};  // the page's overrides
let indexUsable = false;        // a shard is loaded: the recognizer can be created
let recognizerReady = false;
/** the live-listen parameters the recognizer runs with (set by 'start') */
let listenParams = { live: true, max_listen_s: 15, continuous: false };
let createdWith = '';           // JSON of the parameters the recognizer was created with
/** @type {StreamingResampler | null} */ let resampler = null;
let listening = false;
let keepListenAudio = false;    // attach each listen's audio to its answer (not in continuous mode)
/** @type {Float32Array[]} */ let listenAudio = [];
let sessionId = 0;
/** @type {Float32Array[]} */ let backlog = [];
let backlogSamples = 0;
let cpuMs = 0;
let cpuAudioSamples = 0;
let lookStartMs = 0;  // time in startLook() until each look's first wait (the look counts it)
const INPUT_CAPACITY = 16384;   // samples per push into the WASM heap
let inputPointer = 0;
let heapMaxBytes = Infinity;    // the module's MAXIMUM_MEMORY
let memoryLimitBytes = Infinity; // the page's limit on the WASM heap (the build's maximum applies too)
/** set when the WASM module aborted (it cannot be called again): why */
let crashed = '';
const MIB = 1024 * 1024;
let indexMode = 'full';         // 'full' | 'lazy'
/** @type {LazyRangeStore | null} */ let lazyStore = null;
let hotTier = false;            // lazy mode with a whole hot index, which the recognizer matches live
let lookInFlight = false;       // a lazy look is fetching: audio waits in the backlog
// Lazy mode: the range store's counts when this listen began (its figures are the difference).
let listenStart = { requests: 0, bytes: 0 };
// Lazy mode without a hot tier: the core's recognizer never matches by itself (the looks do):
// its matcher would run against the background blocks alone.
const NO_MATCH_EMBEDDINGS = 1_000_000_000;
// Lazy mode: samples pushed at a time, so a look comes within a quarter second of its window
// (kLazyListenPieceSamples in core/lazy_index.h, which `earshot query --live --lazy` pushes).
const LAZY_PIECE_SAMPLES = 4000;

/**
 * Refuses a file the WASM heap has no room for, before any of it is copied in: allocation
 * failure inside the module aborts it (C++ without exceptions), so it is checked here instead,
 * as a clean error. `factor` x the file's bytes is what loading it allocates at its peak (the
 * copy Embind makes, plus what the parser builds from it), plus `extraBytes` (what it reserves).
 * @param {number} bytes @param {number} factor @param {number} extraBytes
 * @param {string} file @param {boolean} fatal
 */
function ensureMemory(bytes, factor, extraBytes, file, fatal) {
    const info = JSON.parse(engine.memoryInfo());
    const limit = Math.min(info.max_bytes, memoryLimitBytes);
    const need = bytes * factor + extraBytes;
    if (info.allocated_bytes + need <= limit) return;
    const mb = (n) => `${(n / MIB).toFixed(1)} MB`;
    throw new EarshotError('out-of-memory', `Not enough memory to load ${file}: loading it takes ${mb(need)}; the recognizer ` +
        `already holds ${mb(info.allocated_bytes)} and may use ${mb(limit)} in all.` +
        (fatal ? ' Nothing can be recognized without it; use a smaller index or allow more memory.'
            : ' The songs in it are not searchable; the rest of the index still works.'), { fatal, file });
}

/** @param {object} message @param {Transferable[]} [transfer] */
function post(message, transfer) {
    self.postMessage(message, transfer ?? []);
}

/** @param {unknown} error */
function postError(error) {
    if (crashed) {
        post({ type: 'error', code: crashed === 'out-of-memory' ? 'out-of-memory' : 'wasm-crashed',
            message: crashed === 'out-of-memory'
                ? 'The recognizer ran out of memory and stopped. Create it again (or reload the page); a smaller index needs less.'
                : `The recognizer stopped after an internal error (${crashed}). Create it again (or reload the page).`,
            fatal: true });
        return;
    }
    if (error instanceof EarshotError) {
        post({ type: 'error', code: error.code, message: error.message, fatal: error.fatal, file: error.file });
    } else {
        const message = /** @type {Error} */ (error)?.message ?? String(error);
        post({ type: 'error', code: 'internal', message: `Internal error: ${message}`, fatal: true });
    }
}

/** Throws an EarshotError when a binding returned a failed status. */
function check(status, code, fatal = true, file = undefined) {
    if (!status.ok) throw new EarshotError(code, status.message, { fatal, file });
}

async function init(options) {
    const t0 = performance.now();
    keepListenAudio = Boolean(options.keepListenAudio);
    if (options.memoryLimitMB !== undefined) memoryLimitBytes = Number(options.memoryLimitMB) * MIB;
    backend = options.backend ?? 'simd';
    recognizerParams = options.recognizerParams ?? {};
    indexMode = options.indexMode ?? 'full';
    if (indexMode !== 'full' && indexMode !== 'lazy') {
        throw new EarshotError('config', `indexMode must be 'full' or 'lazy' (got ${JSON.stringify(indexMode)})`);
    }
    const downloader = new IndexDownloader({
        indexUrl: options.indexUrl, modelUrl: options.modelUrl, retry: options.retry ?? {},
    });
    // Start the manifest download while the WASM compiles.
    const manifestPromise = downloader.loadManifest();
    manifestPromise.catch(() => {});  // handled below

    let createModule;
    try {
        ({ default: createModule } = await import(options.wasmGlueUrl));
    } catch (error) {
        throw new EarshotError('wasm', `Could not load the recognizer code (${options.wasmGlueUrl}): ` +
            `${/** @type {Error} */ (error).message}. Reload the page.`);
    }
    const wasmBinary = await downloader.download(options.wasmUrl, {}).catch((error) => {
        throw new EarshotError('wasm', `Could not download the recognizer (${options.wasmUrl}): ${error.message}`);
    });
    try {
        wasm = await createModule({ wasmBinary, onAbort: onWasmAbort });
    } catch (error) {
        throw new EarshotError('wasm', 'This browser cannot run the recognizer: WebAssembly with SIMD ' +
            `is required (${/** @type {Error} */ (error).message ?? error}). Use a current Chrome, Edge, Firefox or Safari.`);
    }
    engine = new wasm.Engine();
    heapMaxBytes = JSON.parse(engine.memoryInfo()).max_bytes;
    post({ type: 'booted', wasmMs: performance.now() - t0 });

    const { manifest, text, fromCache: manifestFromCache } = await manifestPromise;
    // Format v1 loads shard files, v2 blocks of the songs file: progress counts either as shards.
    const blocks = manifest.version === 2;
    const shards = manifest.shards ?? [];
    const total = blocks ? {
        shardsTotal: manifest.blocks.count,
        bytesTotal: manifest.quantizer.bytes + manifest.directory.bytes + manifest.blocks.bytes,
        songsTotal: manifest.songs,
    } : {
        shardsTotal: shards.length,
        bytesTotal: manifest.quantizer.bytes + shards.reduce((s, f) => s + f.bytes, 0),
        songsTotal: manifest.songs ?? shards.reduce((s, f) => s + (f.songs ?? 0), 0),
    };
    const progress = {
        indexVersion: manifest.version, indexMode, ...total, shardsLoaded: 0, shardsFailed: 0, bytesLoaded: 0, songsLoaded: 0,
        allFromCache: manifestFromCache, offlineReady: false, done: false,
    };
    const postProgress = (phase) => post({ type: 'progress', phase, ...progress, bytesDownloaded: downloader.bytesDownloaded });
    postProgress('manifest');

    const model = await downloader.loadModel(manifest.model_hash);
    // f16 weights widen to f32 (2x), plus the copy; activations and scratch are small.
    ensureMemory(model.bytes.length, 3, 8 * MIB, 'the model', true);
    check(engine.loadModel(model.bytes), 'model-invalid');
    const modelInfo = JSON.parse(engine.modelInfo());
    modelRateHz = modelInfo.sample_rate_hz;
    if (indexMode === 'lazy') {
        await initLazy(downloader, manifest, text, progress, postProgress, modelInfo, t0, options);
        return;
    }
    postProgress('model');
    progress.allFromCache &&= model.fromCache;
    await loadWholeIndex(downloader, manifest, text, progress, postProgress, (info) => {
        indexUsable = true;
        prepareRecognizer();
        inputPointer = engine.inputPointer(INPUT_CAPACITY);
        post({
            type: 'ready', modelName: modelInfo.name, modelHash: modelInfo.hash,
            backend, songsLoaded: info.songs, shardsLoaded: info.shards_loaded,
            shardsTotal: total.shardsTotal, msSinceInit: performance.now() - t0,
        });
        flushBacklog();
    });
    progress.done = true;
    progress.offlineReady = progress.shardsFailed === 0 && downloader.cacheStorage !== null;
    postProgress('done');
    if (!listening) warmUp();  // a listen under way has compiled the code already
}

/**
 * Runs a listen's code once on made-up audio, with the index loaded (Engine.warmUp()): a browser
 * first runs WebAssembly as baseline code and optimizes a function only once it has run, so
 * without this a page's first listen paid for it (a first lazy look about three times slower
 * than the next ones; docs/PERFORMANCE-web.md, "A page's first listen"). Fetches nothing.
 */
function warmUp() {
    const status = engine.warmUp(backend);
    // Only the first listen's speed is at stake: a failure is reported, not fatal.
    if (!status.ok) postError(new EarshotError('internal', `The warm-up failed: ${status.message}`, { fatal: false }));
}

/**
 * A whole index into the engine: manifest, quantizer, (format 2) directory, then every shard
 * or block as it arrives, each checked against the heap's room first; `onFirstShard(indexInfo)`
 * once the first one is in (recognition can start). A rejected shard or block is a non-fatal
 * error (its songs are left out); none at all is fatal.
 * @param {IndexDownloader} downloader @param {any} manifest @param {string} text
 * @param {any} progress updated in place @param {(phase: string) => void} postProgress
 * @param {(info: any) => void} onFirstShard
 */
async function loadWholeIndex(downloader, manifest, text, progress, postProgress, onFirstShard) {
    const blocks = manifest.version === 2;
    check(engine.loadManifest(text), 'manifest-invalid');
    // Without the quantizer (or, in v2, the directory) no shard is usable: that is fatal.
    const quantizer = await downloader.loadFile(manifest.quantizer, { essential: true });
    ensureMemory(quantizer.bytes.length, 2, MIB, manifest.quantizer.file, true);
    check(engine.addQuantizer(quantizer.bytes, manifest.quantizer.file), 'index-corrupt', true, manifest.quantizer.file);
    progress.bytesLoaded += quantizer.bytes.length;
    progress.allFromCache &&= quantizer.fromCache;
    postProgress('quantizer');

    if (blocks) {
        const directory = await downloader.loadFile(manifest.directory, { essential: true });
        // Its lists are reserved in one go when it is added: that room is checked with it.
        const reserve = Math.max(0, engine.directoryReserveBytes(directory.bytes));
        ensureMemory(directory.bytes.length, 2, MIB + reserve, manifest.directory.file, true);
        check(engine.addDirectory(directory.bytes, manifest.directory.file), 'index-corrupt', true, manifest.directory.file);
        progress.bytesLoaded += directory.bytes.length;
        progress.allFromCache &&= directory.fromCache;
        postProgress('directory');
    }

    let first = true;
    for await (const shard of downloader.loadShards(manifest, JSON.parse(engine.shardRanges()))) {
        try {
            if (shard.error) throw shard.error;
            ensureMemory(shard.bytes.length, 2, MIB, shard.what, false);
            const status = engine.addShard(shard.bytes, shard.what);
            if (!status.ok) {
                throw new EarshotError('shard-corrupt', `Index ${blocks ? '' : 'file '}${shard.what} was rejected: ${status.message}. ` +
                    'The songs in it are not searchable; the rest of the index still works.', { fatal: false, file: shard.what });
            }
            progress.shardsLoaded += 1;
            progress.bytesLoaded += shard.bytes.length;
            progress.allFromCache &&= shard.fromCache;
        } catch (error) {
            if (error instanceof EarshotError && !error.fatal) {
                progress.shardsFailed += 1;
                progress.allFromCache = false;
                postError(error);
            } else {
                throw error;
            }
        }
        const info = JSON.parse(engine.indexInfo());
        progress.songsLoaded = info.songs;
        if (first && info.shards_loaded > 0) {
            first = false;
            onFirstShard(info);
        }
        postProgress('shard');
    }
    if (first) {
        throw new EarshotError('index-corrupt', `No ${blocks ? 'block' : 'shard'} of the index ${downloader.manifestUrl} could be ` +
            'loaded, so nothing can be recognized. See the errors above; rebuild or re-upload the index.');
    }
}

/**
 * The lazy way: the quantizer, the block directory and the pair-key header (whole files,
 * verified and cached like the full index's), the background blocks (pinned in the range
 * store), then the recognizer. Nothing of the songs is downloaded here beyond those blocks.
 */
async function initLazy(downloader, manifest, text, progress, postProgress, modelInfo, t0, options) {
    const pairs = manifest.pair_keys;
    const pages = manifest.directory_pages;
    if (manifest.version !== 2 || !pairs?.header || !pairs?.directory || !pairs?.postings || !pages?.header || !pages?.pages) {
        throw new EarshotError('config', `The index ${downloader.manifestUrl} cannot be used lazily: it has no pair-key level ` +
            'or no directory pages. Build it with `earshot build --format 2 --pair-keys 2`, or use the full index mode.');
    }
    if (options.hotIndexUrl) await loadHotTier(downloader, manifest, options, progress);
    // The block directory is read in pages, as the query needs them: only their header here.
    const headerOf = (/** @type {any} */ entry) => ({ file: entry.header.file, bytes: entry.header.bytes, sha256: entry.header.sha256 });
    const files = [];
    for (const entry of [manifest.quantizer, headerOf(pages), headerOf(pairs)]) {
        files.push(await downloader.loadFile(entry, { essential: true }));
    }
    const [quantizer, pagesHeader, pairHeader] = files;
    const preloadBytes = files.reduce((n, f) => n + f.bytes.length, 0);
    // The parsed files and the engine's copies of them: about three times the files.
    ensureMemory(preloadBytes, 3, 8 * MIB, 'the lazy index', true);
    // The core's lazy parameters (core/lazy_index.h; the page's lazyParams override them): the
    // first look at the first pair 2 s apart (3 s of music), which also leaves a hot tier until
    // then to answer without a request.
    const lazyParams = options.lazyParams ?? {};
    if (typeof lazyParams !== 'object' || lazyParams === null || Array.isArray(lazyParams)) {
        throw new EarshotError('config', `lazyParams must be an object (got ${JSON.stringify(lazyParams)})`);
    }
    const loaded = engine.loadLazy(text, quantizer.bytes, pagesHeader.bytes, pairHeader.bytes, JSON.stringify(lazyParams));
    check(loaded, loaded.code === 'config' ? 'config' : 'index-corrupt');
    const store = new LazyRangeStore({
        downloader,
        budgetBytes: options.lazyCacheMB === undefined ? DEFAULT_LAZY_CACHE_BYTES : Number(options.lazyCacheMB) * MIB,
        fileBytes: { [manifest.blocks.file]: manifest.blocks.bytes, [pairs.directory.file]: pairs.directory.bytes,
            [pairs.postings.file]: pairs.postings.bytes, [pages.pages.file]: pages.pages.bytes },
    });
    lazyStore = store;
    await store.open();
    progress.bytesLoaded = preloadBytes;
    progress.allFromCache &&= files.every((f) => f.fromCache);
    postProgress('directory');

    // The background blocks every query is matched against with its candidates: their
    // directory pages, then the blocks. Nothing can be answered without them: any failure here
    // is fatal. A round's ranges are fetched in parallel, as a look's are.
    const fatal = (/** @type {any} */ error) => {
        throw error instanceof EarshotError && !error.fatal
            ? new EarshotError(error.code, error.message, { file: error.file, cause: error }) : error;
    };
    for (;;) {
        const background = JSON.parse(engine.lazyFetches(true));
        if (!background.ok) throw new EarshotError('internal', background.message);
        if (background.fetches.length === 0) break;
        const got = await Promise.all(background.fetches.map((/** @type {any} */ f) => store.get(f))).catch(fatal);
        for (let i = 0; i < got.length; i++) {
            const f = background.fetches[i];
            const { status, bytes, fromCache } = await provideRange(store, f, got[i]).catch(fatal);
            if (!status.ok) {
                throw new EarshotError('index-corrupt', `Index ${f.file} ${f.kind === 'block' ? 'block' : 'directory page'} ${f.id} was rejected: ${status.message}. ` +
                    'Nothing can be recognized lazily without it: rebuild or re-upload the index.', { file: f.file });
            }
            await store.keep(f, bytes, fromCache, true);
            if (f.kind === 'block') progress.shardsLoaded += 1;
            progress.bytesLoaded += bytes.length;
            progress.allFromCache &&= fromCache;
        }
    }
    await store.save();
    indexUsable = true;
    prepareRecognizer();
    inputPointer = engine.inputPointer(INPUT_CAPACITY);
    post({
        type: 'ready', modelName: modelInfo.name, modelHash: modelInfo.hash, backend, indexMode,
        songsLoaded: manifest.songs, shardsLoaded: progress.shardsLoaded, shardsTotal: progress.shardsTotal,
        msSinceInit: performance.now() - t0,
    });
    progress.songsLoaded = manifest.songs;  // every song is searchable, its parts fetched when heard
    progress.done = true;
    progress.offlineReady = false;
    progress.lazyCachedBytes = store.cachedBytes;
    postProgress('done');
    warmUp();  // audio that arrives meanwhile waits; a first look comes seconds later
    flushBacklog();
}

/**
 * Lazy mode's hot tier: a whole index of some of the lazy index's songs (the most played, say),
 * loaded before the lazy files and kept by the engine. The recognizer matches it live with the
 * listen rule, as in the full mode, so a hot song is answered without a request as long as it
 * is answered before the first look (about 3 s of music).
 */
async function loadHotTier(downloader, manifest, options, progress) {
    const hotLoader = new IndexDownloader({ indexUrl: options.hotIndexUrl, modelUrl: options.modelUrl, retry: options.retry ?? {} });
    const { manifest: hotManifest, text, fromCache } = await hotLoader.loadManifest();
    if (hotManifest.model_hash !== manifest.model_hash) {
        throw new EarshotError('model-mismatch', `The hot index ${hotLoader.manifestUrl} was built with another model than the ` +
            `lazy index ${downloader.manifestUrl}: build both with the same model.`, { file: hotLoader.manifestUrl });
    }
    const hot = { bytesLoaded: 0, shardsLoaded: 0, shardsFailed: 0, songsLoaded: 0, allFromCache: fromCache };
    await loadWholeIndex(hotLoader, hotManifest, text, hot, () => {}, () => {});
    hotTier = true;
    progress.hotSongs = hot.songsLoaded;
    progress.hotBytes = hot.bytesLoaded;
    progress.hotOfflineReady = hot.shardsFailed === 0 && hotLoader.cacheStorage !== null;
    downloader.bytesDownloaded += hotLoader.bytesDownloaded;
}

/**
 * A recognizer in live mode with the page's overrides and this listen's length and mode:
 * created anew when those changed, else reset (buffers kept). Throws a fatal 'config' error when
 * the core refuses the parameters.
 */
function prepareRecognizer() {
    listenStart = { requests: lazyStore?.requests ?? 0, bytes: lazyStore?.bytesFetched ?? 0 };
    const lazy = indexMode === 'lazy' && !hotTier ? { match_every_embeddings: NO_MATCH_EMBEDDINGS } : {};
    const params = JSON.stringify({ ...recognizerParams, ...listenParams, ...lazy });
    if (params === createdWith) {
        engine.reset();
        return;
    }
    recognizerReady = false;
    const created = engine.createRecognizer(backend, params);
    if (!created.ok) throw new EarshotError('config', `The recognizer options were refused: ${created.message}`);
    createdWith = params;
    recognizerReady = true;
}

/** Pushes model-rate samples to the recognizer in INPUT_CAPACITY pieces and relays its events. */
function pushSamples(samples) {
    const t0 = performance.now();
    const lookMsBefore = lookStartMs;
    const pieceSamples = indexMode === 'lazy' ? LAZY_PIECE_SAMPLES : INPUT_CAPACITY;
    for (let offset = 0; offset < samples.length && listening; offset += pieceSamples) {
        if (lookInFlight) {  // a look began after the last piece: the rest waits for its answer
            backlog.unshift(samples.slice(offset));
            backlogSamples += samples.length - offset;
            break;
        }
        const piece = samples.subarray(offset, Math.min(samples.length, offset + pieceSamples));
        // Module.HEAPF32 is replaced when the WASM memory grows: look it up for every piece.
        wasm.HEAPF32.set(piece, inputPointer >> 2);
        const status = engine.push(piece.length);
        if (!status.ok) {
            postError(new EarshotError('internal', status.message));
            return;
        }
        if (keepListenAudio && !listenParams.continuous) listenAudio.push(piece.slice());
        for (let text = engine.pollEvent(); text && listening; text = engine.pollEvent()) relay(JSON.parse(text));
        if (indexMode === 'lazy' && listening && !lookInFlight) maybeLook();
    }
    // A look begun here counts its own time (lazyLook).
    cpuMs += performance.now() - t0 - (lookStartMs - lookMsBefore);
    cpuAudioSamples += samples.length;
    if (cpuAudioSamples >= modelRateHz * 2) postStats();
}

/** Reports the CPU spent on the audio since the last report (every 2 s of audio, and before a listen's end). */
function postStats() {
    if (cpuAudioSamples === 0) return;
    const memory = JSON.parse(engine.memoryInfo());
    post({
        type: 'stats', cpuMsPerAudioSecond: cpuMs / (cpuAudioSamples / modelRateHz),
        audioSeconds: cpuAudioSamples / modelRateHz, hearsMusic: engine.hearsMusic(),
        allocatedBytes: memory.allocated_bytes, heapBytes: memory.heap_bytes,
    });
    cpuMs = 0;
    cpuAudioSamples = 0;
}

/**
 * Relays one listen event of the core (listen_event_json, core/recognizer_json.h) to the page.
 * A one-shot listen ends with its match or nomatch.
 * @param {any} event
 */
function relay(event) {
    if (indexMode === 'lazy' && event.type === 'nomatch') {
        // The listen's length is reached: one last look at the window, unless it was just made.
        if (engine.lazyLookDue(true)) {
            startLook(true);
            return;
        }
        postListenEnd(withListenAudio({ type: 'nomatch', session: sessionId, listenedSeconds: event.answer_s, lazy: lazyFigures() }));
        return;
    }
    /** @type {any} */ let message;
    if (event.type === 'match') {
        message = {
            type: 'match', session: sessionId, title: event.title, album: event.album, id: event.song,
            offsetSeconds: event.song_time_s, score: event.score, threshold: event.threshold,
            listenedSeconds: event.answer_s, returned: event.returned,
        };
        if (indexMode === 'lazy') message.lazy = lazyFigures();  // the hot tier answered
    } else if (event.type === 'nomatch') {
        message = { type: 'nomatch', session: sessionId, listenedSeconds: event.answer_s };
    } else {
        message = { type: event.type, session: sessionId, listenedSeconds: event.answer_s };
    }
    if (!listenParams.continuous && (event.type === 'match' || event.type === 'nomatch')) {
        postListenEnd(withListenAudio(message));
    } else {
        post(message);
    }
}

/**
 * Ends a one-shot listen with `message` (its match or nomatch), returned with the audio the
 * recognizer heard attached when the page asked for it.
 * @param {any} message
 */
function withListenAudio(message) {
    listening = false;
    if (keepListenAudio) {
        const samples = new Float32Array(listenAudio.reduce((n, piece) => n + piece.length, 0));
        let at = 0;
        for (const piece of listenAudio) {
            samples.set(piece, at);
            at += piece.length;
        }
        message.audio = { samples, sampleRateHz: modelRateHz };
    }
    listenAudio = [];
    return message;
}

/** Posts a listen's last message, its audio (if any) transferred. @param {any} message */
function postListenEnd(message) {
    postStats();  // the listen's last look included
    post(message, message.audio ? [message.audio.samples.buffer] : []);
}

/**
 * Hands one range to the core (`got`: the store's copy of it). A cached copy the core refuses is
 * forgotten and fetched once more from the network. Returns the core's answer to the last copy
 * given, with that copy.
 * @param {LazyRangeStore} store @param {any} f @param {{bytes: Uint8Array, fromCache: boolean}} got
 */
async function provideRange(store, f, got) {
    let { bytes, fromCache } = got;
    let status = engine.lazyProvide(f.kind, f.id, bytes);
    if (!status.ok && fromCache) {
        await store.forget(f);
        bytes = await store.download(f);
        fromCache = false;
        status = engine.lazyProvide(f.kind, f.id, bytes);
    }
    return { status, bytes, fromCache };
}

/** Lazy mode: this listen's Range requests and bytes, and the bytes cached now. */
function lazyFigures() {
    return {
        requests: (lazyStore?.requests ?? 0) - listenStart.requests,
        bytes: (lazyStore?.bytesFetched ?? 0) - listenStart.bytes,
        cachedBytes: lazyStore?.cachedBytes ?? 0,
    };
}

/**
 * Lazy mode, after each piece of audio: a look when the core says one is due (lazy_look_due,
 * core/lazy_index.h: the music window holds its first pair of embeddings, half the query window,
 * then every half window more of music), the rule `earshot query --live --lazy` follows too.
 */
function maybeLook() {
    if (engine.lazyLookDue(false)) startLook(false);
}

/** @param {boolean} final the listen's end: no match is its nomatch */
function startLook(final) {
    lookInFlight = true;
    const t0 = performance.now();
    lazyLook(final).catch((error) => {
        lookInFlight = false;
        listening = false;
        postError(error);
    });
    lookStartMs += performance.now() - t0;  // up to the look's first wait
}

/**
 * One lazy look at the recognizer's current window: the ranges the core names, round by round
 * (each round's requests in parallel, from the range store's cache when it has them), then the
 * core's decision on that window. The audio that arrives meanwhile waits in the backlog. A
 * range the core refuses is fetched once more from the network; a listen whose ranges cannot be
 * had (offline, or refused twice) ends with a non-fatal error and a nomatch that says so.
 * @param {boolean} final
 */
async function lazyLook(final) {
    const session = sessionId;
    const store = /** @type {LazyRangeStore} */ (lazyStore);
    const q = JSON.parse(engine.queryInfo());
    let t = performance.now();
    let engineMs = 0;
    const lap = () => {  // time in the engine, not waiting for the network
        const now = performance.now();
        engineMs += now - t;
        t = now;
    };
    /** @type {any} */ let answer = null;
    /** @type {EarshotError | null} */ let failure = null;
    try {
        check(engine.lazyBegin(), 'internal');
        // The query's rounds; when its candidates name no song, at the listen's last look or
        // a whole window, a second round with wider keys and more candidates
        // (Engine.lazyWiden()).
        for (;;) {
            const next = JSON.parse(engine.lazyFetches(false));
            if (!next.ok) throw new EarshotError('internal', next.message);
            if (next.fetches.length === 0) {
                answer = JSON.parse(engine.lazyResult());
                if (answer?.matched || !engine.lazyWiden(final)) break;
                continue;
            }
            lap();
            const got = await Promise.all(next.fetches.map((/** @type {any} */ f) => store.get(f)));
            t = performance.now();
            for (let i = 0; i < got.length; i++) {
                const f = next.fetches[i];
                const { status, bytes, fromCache } = await provideRange(store, f, got[i]);
                if (!status.ok) {
                    throw new EarshotError('index-corrupt', `Bytes ${f.offset}–${f.offset + f.bytes - 1} of index file ${f.file} ` +
                        `were rejected: ${status.message}. This listen could not be answered; re-upload the index.`,
                        { fatal: false, file: f.file });
                }
                lap();
                await store.keep(f, bytes, fromCache);  // waiting on the Cache API: not counted
                t = performance.now();
            }
        }
        lap();
    } catch (error) {
        if (!(error instanceof EarshotError) || error.fatal) throw error;
        failure = error.code === 'network'
            ? new EarshotError('offline', 'This listen needs parts of the index that are not cached, and the network ' +
                `cannot be reached (${error.message}). Offline, earshot recognizes the songs heard here before ` +
                `(${(store.cachedBytes / MIB).toFixed(1)} MB of the index cached); the rest needs the network.`,
                { fatal: false, cause: error })
            : error;
    } finally {
        lookInFlight = false;
        cpuMs += engineMs;
        await store.save().catch(() => {});
    }
    if (session !== sessionId || !listening) {  // stopped, or a new listen began meanwhile
        if (listening) flushBacklog();
        return;
    }
    const listenedSeconds = q.stream_time_s;
    if (failure) {
        postError(failure);
        postListenEnd(withListenAudio({ type: 'nomatch', session, listenedSeconds, needsNetwork: failure.code === 'offline',
            lazy: lazyFigures() }));
        return;
    }
    if (answer?.matched) {
        postListenEnd(withListenAudio({
            type: 'match', session, title: answer.best.title, album: answer.best.album, id: answer.song,
            offsetSeconds: answer.song_time_s, score: answer.score, threshold: answer.threshold, listenedSeconds,
            returned: false, lazy: lazyFigures(),
        }));
        return;
    }
    if (final) {
        postListenEnd(withListenAudio({ type: 'nomatch', session, listenedSeconds, lazy: lazyFigures() }));
        return;
    }
    flushBacklog();
}

function flushBacklog() {
    while (backlog.length > 0 && listening && !lookInFlight) {
        const block = /** @type {Float32Array} */ (backlog.shift());
        backlogSamples -= block.length;
        pushSamples(block);
    }
    if (!listening) {
        backlog = [];
        backlogSamples = 0;
    }
}

/**
 * The module aborted (Module.onAbort): most likely a heap allocation failed. Nothing may call
 * into it again; the page gets one fatal error and can create a new recognizer.
 * @param {unknown} what
 */
function onWasmAbort(what) {
    // The heap as JS sees it (the module itself may not be called any more) against its maximum.
    const heapBytes = wasm?.HEAP8?.length ?? 0;
    crashed = heapBytes + 64 * MIB >= Math.min(heapMaxBytes, memoryLimitBytes) ? 'out-of-memory' : String(what || 'abort');
    listening = false;
    recognizerReady = false;
}

/** @param {{samples: Float32Array, sampleRate: number}} message */
function onAudio(message) {
    if (!listening || crashed) return;
    let samples = message.samples;
    if (message.sampleRate !== modelRateHz) {
        if (!resampler || resampler.inRateHz !== message.sampleRate) {
            resampler = new StreamingResampler(message.sampleRate, modelRateHz);
        }
        samples = resampler.process(samples).slice();
    }
    if (!recognizerReady || lookInFlight) {
        backlog.push(samples);
        backlogSamples += samples.length;
        while (backlogSamples > BACKLOG_SECONDS * modelRateHz) backlogSamples -= backlog.shift().length;
        return;
    }
    pushSamples(samples);
}

self.onmessage = (event) => {
    const message = event.data;
    switch (message.type) {
        case 'init':
            init(message).catch(postError);
            break;
        case 'audio-port':
            message.port.onmessage = (e) => {
                try {
                    onAudio(e.data);
                } catch (error) {
                    postError(error);
                }
            };
            break;
        case 'start':
            sessionId = message.session;
            listenParams = {
                live: true, max_listen_s: message.maxListenSeconds ?? 15, continuous: Boolean(message.continuous),
            };
            if (indexMode === 'lazy' && listenParams.continuous) {
                postError(new EarshotError('config', 'Continuous listening needs the full index (indexMode \'full\'): ' +
                    'a lazy index answers one listen at a time.', { fatal: false }));
                break;
            }
            listening = true;
            listenAudio = [];
            backlog = [];
            backlogSamples = 0;
            resampler = null;
            try {
                if (indexUsable) prepareRecognizer();
            } catch (error) {
                listening = false;
                postError(error);
            }
            break;
        case 'stop':
            listening = false;
            break;
        default:
            postError(new Error(`unknown message type ${message.type}`));
    }
};
