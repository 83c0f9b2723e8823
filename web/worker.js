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
//                    keepListenAudio, memoryLimitMB}
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

import { EarshotError } from './fetch-util.js';
import { IndexDownloader } from './index-loader.js';
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
const INPUT_CAPACITY = 16384;   // samples per push into the WASM heap
let inputPointer = 0;
let heapMaxBytes = Infinity;    // the module's MAXIMUM_MEMORY
let memoryLimitBytes = Infinity; // the page's limit on the WASM heap (the build's maximum applies too)
/** set when the WASM module aborted (it cannot be called again): why */
let crashed = '';
const MIB = 1024 * 1024;

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
        indexVersion: manifest.version, ...total, shardsLoaded: 0, shardsFailed: 0, bytesLoaded: 0, songsLoaded: 0,
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
    check(engine.loadManifest(text), 'manifest-invalid');
    postProgress('model');

    // Without the quantizer (or, in v2, the directory) no shard is usable: that is fatal.
    const quantizer = await downloader.loadFile(manifest.quantizer, { essential: true });
    ensureMemory(quantizer.bytes.length, 2, MIB, manifest.quantizer.file, true);
    check(engine.addQuantizer(quantizer.bytes, manifest.quantizer.file), 'index-corrupt', true, manifest.quantizer.file);
    progress.bytesLoaded += quantizer.bytes.length;
    progress.allFromCache &&= model.fromCache && quantizer.fromCache;
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
        if (!indexUsable && info.shards_loaded > 0) {
            indexUsable = true;
            prepareRecognizer();
            inputPointer = engine.inputPointer(INPUT_CAPACITY);
            post({
                type: 'ready', modelName: modelInfo.name, modelHash: modelInfo.hash,
                backend, songsLoaded: info.songs, shardsLoaded: info.shards_loaded,
                shardsTotal: total.shardsTotal, msSinceInit: performance.now() - t0,
            });
            flushBacklog();
        }
        postProgress('shard');
    }
    if (!indexUsable) {
        throw new EarshotError('index-corrupt', `No ${blocks ? 'block' : 'shard'} of the index could be loaded, so nothing can be ` +
            'recognized. See the errors above; rebuild or re-upload the index.');
    }
    progress.done = true;
    progress.offlineReady = progress.shardsFailed === 0 && downloader.cacheStorage !== null;
    postProgress('done');
}

/**
 * A recognizer in live mode with the page's overrides and this listen's length and mode:
 * created anew when those changed, else reset (buffers kept). Throws a fatal 'config' error when
 * the core refuses the parameters.
 */
function prepareRecognizer() {
    const params = JSON.stringify({ ...recognizerParams, ...listenParams });
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
    for (let offset = 0; offset < samples.length && listening; offset += INPUT_CAPACITY) {
        const piece = samples.subarray(offset, Math.min(samples.length, offset + INPUT_CAPACITY));
        // Module.HEAPF32 is replaced when the WASM memory grows: look it up for every piece.
        wasm.HEAPF32.set(piece, inputPointer >> 2);
        const status = engine.push(piece.length);
        if (!status.ok) {
            postError(new EarshotError('internal', status.message));
            return;
        }
        if (keepListenAudio && !listenParams.continuous) listenAudio.push(piece.slice());
        for (let text = engine.pollEvent(); text && listening; text = engine.pollEvent()) relay(JSON.parse(text));
    }
    cpuMs += performance.now() - t0;
    cpuAudioSamples += samples.length;
    if (cpuAudioSamples >= modelRateHz * 2) {
        const memory = JSON.parse(engine.memoryInfo());
        post({
            type: 'stats', cpuMsPerAudioSecond: cpuMs / (cpuAudioSamples / modelRateHz),
            audioSeconds: cpuAudioSamples / modelRateHz, hearsMusic: engine.hearsMusic(),
            allocatedBytes: memory.allocated_bytes, heapBytes: memory.heap_bytes,
        });
        cpuMs = 0;
        cpuAudioSamples = 0;
    }
}

/**
 * Relays one listen event of the core (listen_event_json, core/recognizer_json.h) to the page.
 * A one-shot listen ends with its match or nomatch.
 * @param {any} event
 */
function relay(event) {
    /** @type {any} */ let message;
    if (event.type === 'match') {
        message = {
            type: 'match', session: sessionId, title: event.title, album: event.album, id: event.song,
            offsetSeconds: event.song_time_s, score: event.score, threshold: event.threshold,
            listenedSeconds: event.answer_s, returned: event.returned,
        };
    } else if (event.type === 'nomatch') {
        message = { type: 'nomatch', session: sessionId, listenedSeconds: event.answer_s };
    } else {
        message = { type: event.type, session: sessionId, listenedSeconds: event.answer_s };
    }
    /** @type {Transferable[]} */ const transfer = [];
    if (!listenParams.continuous && (event.type === 'match' || event.type === 'nomatch')) {
        listening = false;
        if (keepListenAudio) {
            const samples = new Float32Array(listenAudio.reduce((n, piece) => n + piece.length, 0));
            let at = 0;
            for (const piece of listenAudio) {
                samples.set(piece, at);
                at += piece.length;
            }
            message.audio = { samples, sampleRateHz: modelRateHz };
            transfer.push(samples.buffer);
        }
        listenAudio = [];
    }
    post(message, transfer);
}

function flushBacklog() {
    const pending = backlog;
    backlog = [];
    backlogSamples = 0;
    for (const block of pending) if (listening) pushSamples(block);
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
    if (!recognizerReady) {
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
