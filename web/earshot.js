// earshot web library: `const r = await createRecognizer({indexUrl, modelUrl})`, then
// `await r.start()` / `r.stop()`, and events on `r` (an EventTarget):
//   ready          {modelName, songsLoaded, shardsLoaded, shardsTotal, msSinceInit}
//   progress       {phase, indexVersion, indexMode, shardsLoaded, shardsTotal, shardsFailed,
//                   bytesLoaded, bytesTotal, bytesDownloaded, songsLoaded, songsTotal, done,
//                   offlineReady, allFromCache, lazyCachedBytes, hotSongs, hotBytes,
//                   hotOfflineReady}
//                                                  (format 2 blocks count as shards)
//   match          {title, album, id, offsetSeconds, score, threshold, listenedSeconds, returned,
//                   lazy}
//   nomatch        {listenedSeconds, lazy, needsNetwork}
//   music-stopped  {listenedSeconds}                (continuous mode)
//   error          {code, message, fatal, file}
//   level          {rms, peak}                     (~30 per second while listening)
//   listening      {listening: boolean}
// Each event is a CustomEvent whose `detail` holds the fields above (web/earshot.d.ts). The WASM
// core decides, with one rule for the page and `earshot query --live` (core/listen.h): a listen
// answers 'match' as soon as the evidence is certain, or 'nomatch' after maxListenSeconds of
// audio; in continuous mode it reports each new song, a song that returns, and the music
// stopping, until stop().
//
// indexMode 'lazy' (an index built with `earshot build --format 2 --pair-keys 2`) downloads the
// quantizer and the headers of the directory pages and pair keys once and then, per listen,
// only the byte ranges the core names (`lazy` in match/nomatch: {requests, bytes,
// cachedBytes}), kept in the Cache API under lazyCacheMB: a million-song index without
// downloading it. The server sees which parts of the index a listen needs, and those name the
// song (docs/SCALE.md, "What the requests reveal").
//
// Audio path: getUserMedia (echoCancellation, noiseSuppression, autoGainControl off) ->
// AudioContext at the model rate when the browser allows it -> AudioWorklet (copies samples
// only) -> MessagePort -> Worker (resamples if needed, runs the WASM recognizer). No audio ever
// leaves the browser: the only requests are GETs of the app, the model and the index.

import { EarshotError } from './fetch-util.js';

export { EarshotError };

const MODEL_RATE_HZ = 16000;

/**
 * @typedef {object} RecognizerOptions
 * @property {string} indexUrl   manifest.json URL (or the folder holding it)
 * @property {string} modelUrl   .emod model URL (the one the index was built with)
 * @property {'full' | 'lazy'} [indexMode]  'full' (default): download the whole index, then work
 *           offline with nothing revealed; 'lazy': download per listen only the parts of the
 *           index it needs (format 2 with a pair-key level; no continuous mode)
 * @property {number} [lazyCacheMB]  lazy mode: megabytes of fetched index parts kept in the
 *           Cache API, least recently used dropped first (default 64); those songs are
 *           recognized offline too
 * @property {Record<string, number>} [lazyParams]
 *           lazy mode, advanced: overrides of the core's LazyIndexParams (core/lazy_index.h), whole
 *           numbers; `{more_candidates: 0}` turns the second round of candidates off (fewer bytes
 *           when a look finds no song, fewer songs found). An unknown key or a wrong type is a
 *           fatal 'config' error
 * @property {string} [hotIndexUrl]  lazy mode: a whole index of some of the lazy index's songs
 *           (its most played, say), downloaded first and matched live as in the full mode: those
 *           songs are answered offline and, when answered before the first look, without any
 *           request
 * @property {number} [maxListenSeconds]  a listen ends with 'nomatch' after this much audio
 *           without a song (default 15; 0: no limit)
 * @property {boolean} [continuous]       keep listening: 'match' for each new song (or one that
 *           returns), 'music-stopped' when the music stops; never 'nomatch'; until stop()
 * @property {'simd' | 'scalar'} [backend]
 * @property {number | 'device'} [audioContextSampleRate]  rate asked of the AudioContext: default
 *           the model rate (the browser resamples); 'device' keeps the device rate and the
 *           Worker resamples (for browsers whose own resampling is poor)
 * @property {{query_hop_frames?: number, max_query_embeddings?: number, min_query_embeddings?: number,
 *             match_every_embeddings?: number, nprobe?: number, k_per_query?: number, max_candidates?: number,
 *             n_results?: number, threshold_base?: number, threshold_scale?: number, max_drift?: number,
 *             prior_weight?: number, prior_offset?: number, confirm_looks?: number,
 *             gate_close_hops?: number}} [recognizerParams]
 *           advanced: overrides of the core's RecognizerParams (defaults come from the model); an
 *           unknown key or a wrong type is a fatal 'config' error. live, max_listen_s and
 *           continuous come from the options above
 * @property {boolean} [keepListenAudio]  attach to each match/nomatch the audio the recognizer
 *           heard in that listen (`audio`: mono, model rate): for tests and bug reports
 * @property {string} [wasmUrl]      default: ./wasm/earshot-core.wasm next to this file
 * @property {string} [wasmGlueUrl]  default: ./wasm/earshot-core.mjs
 * @property {string} [workerUrl]    default: ./worker.js
 * @property {string} [workletUrl]   default: ./audio-worklet.js
 * @property {{retries?: number, baseDelayMs?: number, maxDelayMs?: number}} [retry]
 * @property {number} [memoryLimitMB]  most memory the recognizer's WebAssembly heap may use
 *           (default, and at most: the build's maximum, 1024 MB). A model, quantizer or directory
 *           (with the lists it reserves) that would not fit is a fatal 'out-of-memory' error, a
 *           shard a non-fatal one (its songs are left out); checked before loading, so the page
 *           can destroy() and create a recognizer again.
 */

/** Turns a getUserMedia failure into a message a person can act on. */
export function microphoneError(error) {
    const name = /** @type {DOMException} */ (error)?.name;
    if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
        return new EarshotError('mic-denied', 'Microphone access was denied. earshot needs the microphone ' +
            'to listen (audio never leaves this device): allow it in the site settings (the icon left of ' +
            'the address) and press Listen again.', { fatal: false, cause: error });
    }
    if (name === 'NotFoundError' || name === 'OverconstrainedError') {
        return new EarshotError('mic-missing', 'No microphone was found. Connect one and press Listen again.',
            { fatal: false, cause: error });
    }
    if (name === 'NotReadableError' || name === 'AbortError') {
        return new EarshotError('mic-busy', 'The microphone is in use by another application or could not ' +
            'be started. Close the other application and try again.', { fatal: false, cause: error });
    }
    return new EarshotError('mic-error', `The microphone could not be opened: ${error?.message ?? error}.`,
        { fatal: false, cause: error });
}

export class EarshotRecognizer extends EventTarget {
    /** @param {RecognizerOptions} options @param {Worker} worker */
    constructor(options, worker) {
        super();
        this.options = options;
        this.worker = worker;
        /** latest progress detail */
        this.progress = null;
        this.isReady = false;
        this.listening = false;
        /** @type {Error | null} fatal error, once one happened */
        this.failed = null;
        this.session = 0;
        /** @type {{stream: MediaStream, context: AudioContext, node: AudioWorkletNode, source: MediaStreamAudioSourceNode} | null} */
        this.audio = null;
        /** CPU ms the Worker spends per second of audio (latest figure) */
        this.cpuMsPerAudioSecond = NaN;
        /** whether the core's music gate heard music lately (latest 'stats') */
        this.hearsMusic = false;
        /** resolves on 'ready', rejects on a fatal error before it */
        this.ready = new Promise((resolve, reject) => {
            this.resolveReady = resolve;
            this.rejectReady = reject;
        });
        this.ready.catch(() => {});
    }

    /** @param {string} type @param {object} detail */
    emit(type, detail) {
        this.dispatchEvent(new CustomEvent(type, { detail }));
    }

    /** @param {MessageEvent} event */
    onWorkerMessage(event) {
        const { type, ...detail } = event.data;
        switch (type) {
            case 'progress':
                this.progress = detail;
                this.emit('progress', detail);
                break;
            case 'ready':
                this.isReady = true;
                this.resolveReady(detail);
                this.emit('ready', detail);
                break;
            case 'match':
            case 'nomatch':
            case 'music-stopped':
                if (detail.session !== this.session) return;  // a stale result of an old session
                this.emit(type, detail);
                // The core ends a one-shot listen with its match or nomatch.
                if (type !== 'music-stopped' && !this.options.continuous) this.stop();
                break;
            case 'stats':
                this.cpuMsPerAudioSecond = detail.cpuMsPerAudioSecond;
                this.hearsMusic = detail.hearsMusic;
                this.emit('stats', detail);
                break;
            case 'error':
                this.fail(new EarshotError(detail.code, detail.message, { fatal: detail.fatal, file: detail.file }));
                break;
            default:
                break;
        }
    }

    /** Reports an error; a fatal one stops listening and rejects `ready`. @param {EarshotError} error */
    fail(error) {
        if (error.fatal) {
            this.failed = error;
            this.rejectReady(error);
            this.stop();
        }
        this.emit('error', { code: error.code, message: error.message, fatal: error.fatal, file: error.file });
    }

    /**
     * Opens the microphone and starts recognizing (results arrive as events). Resolves once
     * audio flows; rejects (and emits 'error') when the microphone cannot be opened.
     */
    async start() {
        if (this.failed) throw this.failed;
        if (this.listening) return;
        this.listening = true;
        this.session += 1;
        const session = this.session;
        try {
            if (!navigator.mediaDevices?.getUserMedia) {
                throw new EarshotError('mic-unsupported', 'This browser gives no microphone access here ' +
                    '(the page must be served over https or from localhost).', { fatal: false });
            }
            let stream;
            try {
                stream = await navigator.mediaDevices.getUserMedia({
                    audio: {
                        echoCancellation: false, noiseSuppression: false, autoGainControl: false,
                        channelCount: { ideal: 1 },
                    },
                    video: false,
                });
            } catch (error) {
                throw microphoneError(error);
            }
            if (!this.listening || session !== this.session) {
                stream.getTracks().forEach((t) => t.stop());
                return;
            }
            this.audio = await this.connectAudio(stream);
            this.worker.postMessage({
                type: 'start', session, sampleRate: this.audio.context.sampleRate,
                maxListenSeconds: this.options.maxListenSeconds ?? 15, continuous: Boolean(this.options.continuous),
            });
            this.emit('listening', { listening: true, sampleRate: this.audio.context.sampleRate });
        } catch (error) {
            this.listening = false;
            this.releaseAudio();
            const e = error instanceof EarshotError ? error
                : new EarshotError('audio', `Audio could not be started: ${/** @type {Error} */ (error).message}`, { fatal: false });
            this.emit('error', { code: e.code, message: e.message, fatal: false });
            this.emit('listening', { listening: false });
            throw e;
        }
    }

    /**
     * The audio graph: source -> worklet. Asks for the model rate so the browser resamples;
     * browsers that refuse (or cannot connect a stream at another rate) get the device rate and
     * the Worker resamples.
     * @param {MediaStream} stream
     */
    async connectAudio(stream) {
        const workletUrl = this.options.workletUrl ?? new URL('./audio-worklet.js', import.meta.url).href;
        const build = async (sampleRate) => {
            const context = sampleRate ? new AudioContext({ sampleRate, latencyHint: 'interactive' }) : new AudioContext();
            try {
                await context.audioWorklet.addModule(workletUrl);
                const source = context.createMediaStreamSource(stream);
                const node = new AudioWorkletNode(context, 'earshot-capture', {
                    numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1,
                    channelCountMode: 'explicit', channelInterpretation: 'speakers',
                });
                source.connect(node);
                return { stream, context, node, source };
            } catch (error) {
                await context.close().catch(() => {});
                throw error;
            }
        };
        const wanted = this.options.audioContextSampleRate ?? MODEL_RATE_HZ;
        let audio;
        try {
            audio = await build(wanted === 'device' ? undefined : wanted);
        } catch {
            audio = await build(undefined);
        }
        if (audio.context.state === 'suspended') await audio.context.resume().catch(() => {});
        const channel = new MessageChannel();
        audio.node.port.postMessage({ type: 'connect', port: channel.port1 }, [channel.port1]);
        this.worker.postMessage({ type: 'audio-port', port: channel.port2 }, [channel.port2]);
        audio.node.port.onmessage = (event) => {
            if (event.data.type === 'level') this.emit('level', { rms: event.data.rms, peak: event.data.peak });
        };
        return audio;
    }

    releaseAudio() {
        const audio = this.audio;
        this.audio = null;
        if (!audio) return;
        audio.node.port.postMessage({ type: 'stop' });
        audio.source.disconnect();
        audio.stream.getTracks().forEach((t) => t.stop());
        audio.context.close().catch(() => {});
    }

    /** Stops listening and releases the microphone. */
    stop() {
        const wasListening = this.listening;
        this.listening = false;
        this.worker.postMessage({ type: 'stop' });
        this.releaseAudio();
        if (wasListening) this.emit('listening', { listening: false });
    }

    /** Stops and ends the Worker; the object cannot be used afterwards. */
    destroy() {
        this.stop();
        this.worker.terminate();
    }
}

/**
 * Creates a recognizer: starts the Worker, compiles the WASM, and begins downloading the model
 * and the index (progress/ready events follow; listeners added right after the await see all
 * of them). Rejects if the Worker or the WASM cannot start.
 * @param {RecognizerOptions} options
 * @returns {Promise<EarshotRecognizer>}
 */
export async function createRecognizer(options) {
    if (!options?.indexUrl || !options?.modelUrl) {
        throw new TypeError('createRecognizer needs {indexUrl, modelUrl}');
    }
    if (options.indexMode !== undefined && options.indexMode !== 'full' && options.indexMode !== 'lazy') {
        throw new TypeError(`indexMode must be 'full' or 'lazy', not ${JSON.stringify(options.indexMode)}`);
    }
    if (options.hotIndexUrl !== undefined && options.indexMode !== 'lazy') {
        throw new TypeError('hotIndexUrl goes with indexMode \'lazy\' (in the full mode, indexUrl is the whole index)');
    }
    if (options.indexMode === 'lazy' && options.continuous) {
        throw new TypeError('continuous listening needs indexMode \'full\': a lazy index answers one listen at a time');
    }
    const here = import.meta.url;
    const workerUrl = options.workerUrl ?? new URL('./worker.js', here).href;
    const worker = new Worker(workerUrl, { type: 'module', name: 'earshot-recognizer' });
    const recognizer = new EarshotRecognizer(options, worker);
    await new Promise((resolve, reject) => {
        worker.onerror = (event) => {
            event.preventDefault?.();
            reject(new EarshotError('worker', `The recognizer worker failed to start: ${event.message || 'script error'}.`));
        };
        worker.onmessage = (event) => {
            if (event.data.type === 'booted') {
                resolve(undefined);
            } else if (event.data.type === 'error' && event.data.fatal) {
                reject(new EarshotError(event.data.code, event.data.message, { file: event.data.file }));
            } else {
                recognizer.onWorkerMessage(event);
            }
        };
        worker.postMessage({
            type: 'init',
            indexUrl: new URL(options.indexUrl, document.baseURI).href,
            modelUrl: new URL(options.modelUrl, document.baseURI).href,
            wasmGlueUrl: options.wasmGlueUrl ?? new URL('./wasm/earshot-core.mjs', here).href,
            wasmUrl: options.wasmUrl ?? new URL('./wasm/earshot-core.wasm', here).href,
            backend: options.backend ?? 'simd',
            recognizerParams: options.recognizerParams ?? {},
            keepListenAudio: Boolean(options.keepListenAudio),
            retry: options.retry ?? {},
            memoryLimitMB: options.memoryLimitMB,
            indexMode: options.indexMode ?? 'full',
            lazyCacheMB: options.lazyCacheMB,
            lazyParams: options.lazyParams,
            hotIndexUrl: options.hotIndexUrl === undefined ? undefined : new URL(options.hotIndexUrl, document.baseURI).href,
        });
    });
    worker.onmessage = (event) => recognizer.onWorkerMessage(event);
    worker.onerror = (event) => {
        event.preventDefault?.();
        recognizer.fail(new EarshotError('worker', `The recognizer worker crashed: ${event.message || 'script error'}.`));
    };
    return recognizer;
}
