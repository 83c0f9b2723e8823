// Types of the earshot web library (web/earshot.js) and its web component.

export interface RecognizerOptions {
    /** manifest.json URL, or the folder holding it */
    indexUrl: string;
    /** .emod model URL: the model the index was built with (checked against manifest.model_hash) */
    modelUrl: string;
    /** give up with 'nomatch' after this many seconds of audio (default 15) */
    maxListenSeconds?: number;
    /** keep listening after a match or no-match (default false: stop and release the microphone) */
    continuous?: boolean;
    /** embedding backend in WASM (default 'simd') */
    backend?: 'simd' | 'scalar';
    /**
     * rate asked of the AudioContext: default the model rate (16000; the browser resamples);
     * 'device' keeps the device rate and the Worker resamples
     */
    audioContextSampleRate?: number | 'device';
    /**
     * advanced: overrides of the core's RecognizerParams (defaults come from the model); an
     * unknown key or a wrong type is a fatal 'config' error (core/recognizer_json.h)
     */
    recognizerParams?: {
        query_hop_frames?: number; max_query_embeddings?: number; min_query_embeddings?: number;
        match_every_embeddings?: number; nprobe?: number; k_per_query?: number; max_candidates?: number;
        n_results?: number; threshold_base?: number; threshold_scale?: number;
    };
    /**
     * attach to each match/nomatch detail the audio the recognizer heard in that listen
     * (`audio`), for tests and bug reports; ignored in continuous mode
     */
    keepListenAudio?: boolean;
    wasmUrl?: string;
    wasmGlueUrl?: string;
    workerUrl?: string;
    workletUrl?: string;
    /** network retry with exponential back-off (defaults: 4 retries, 500 ms doubling to 8 s) */
    retry?: { retries?: number; baseDelayMs?: number; maxDelayMs?: number };
}

export interface ReadyDetail {
    modelName: string;
    modelHash: string;
    backend: 'simd' | 'scalar';
    songsLoaded: number;
    shardsLoaded: number;
    shardsTotal: number;
    /** ms from createRecognizer() to the first usable shard */
    msSinceInit: number;
}

export interface ProgressDetail {
    phase: 'manifest' | 'model' | 'quantizer' | 'shard' | 'done';
    shardsLoaded: number;
    shardsTotal: number;
    /** shards rejected (bad size or SHA-256, or refused by the core) */
    shardsFailed: number;
    /** index bytes loaded and verified (quantizer + shards) */
    bytesLoaded: number;
    bytesTotal: number;
    /** bytes that came over the network (WASM, model, index), not from a cache */
    bytesDownloaded: number;
    songsLoaded: number;
    songsTotal: number;
    done: boolean;
    /** every shard verified and cached: works without network once the service worker runs */
    offlineReady: boolean;
    allFromCache: boolean;
}

export interface MatchCandidate {
    id: string;
    title: string;
    album: string;
    /** position in the song at the start of the listen, seconds */
    offset_s: number;
    /** mean cosine similarity of the aligned query, in [-1, 1] */
    score: number;
}

/** The audio of one listen, exactly as the recognizer consumed it. */
export interface ListenAudio {
    /** mono samples at the model rate, in [-1, 1] */
    samples: Float32Array;
    sampleRateHz: number;
}

export interface MatchDetail {
    title: string;
    album: string;
    id: string;
    /** position in the song at the end of the audio heard, seconds */
    offsetSeconds: number;
    /** the core's decision statistic (aligned similarity less the background), compared with threshold */
    score: number;
    /** no-match threshold applied to this query */
    threshold: number;
    /** seconds of audio the recognizer heard in this listen */
    listenedSeconds: number;
    runnerUps: MatchCandidate[];
    /** with keepListenAudio */
    audio?: ListenAudio;
}

/** The core's final decision when the listen timed out: no song scored above its threshold. */
export interface NoMatchDetail {
    /** seconds of audio the recognizer heard in this listen */
    listenedSeconds: number;
    /** the core's decision statistic of its final result (0 when it had no candidate) */
    score: number;
    /** the threshold it was compared with */
    threshold: number;
    /** with keepListenAudio */
    audio?: ListenAudio;
}

export type ErrorCode =
    | 'mic-denied' | 'mic-missing' | 'mic-busy' | 'mic-error' | 'mic-unsupported' | 'audio'
    | 'network' | 'http' | 'manifest-invalid' | 'model-mismatch' | 'model-invalid'
    | 'index-corrupt' | 'shard-corrupt' | 'wasm' | 'worker' | 'config' | 'internal';

export interface ErrorDetail {
    code: ErrorCode;
    /** what went wrong and what to do, for people */
    message: string;
    /** fatal errors stop the recognizer; others (a rejected shard, a denied microphone) do not */
    fatal: boolean;
    file?: string;
}

export interface LevelDetail {
    /** linear RMS of the last ~32 ms */
    rms: number;
    peak: number;
}

export interface EarshotEventMap {
    ready: CustomEvent<ReadyDetail>;
    progress: CustomEvent<ProgressDetail>;
    match: CustomEvent<MatchDetail>;
    nomatch: CustomEvent<NoMatchDetail>;
    error: CustomEvent<ErrorDetail>;
    level: CustomEvent<LevelDetail>;
    listening: CustomEvent<{ listening: boolean; sampleRate?: number }>;
    stats: CustomEvent<{ cpuMsPerAudioSecond: number; audioSeconds: number }>;
}

export class EarshotError extends Error {
    constructor(code: ErrorCode, message: string, details?: { fatal?: boolean; file?: string; cause?: unknown });
    code: ErrorCode;
    fatal: boolean;
    file?: string;
}

export class EarshotRecognizer extends EventTarget {
    readonly options: RecognizerOptions;
    /** resolves when the first shard is usable; rejects on a fatal error before that */
    readonly ready: Promise<ReadyDetail>;
    readonly isReady: boolean;
    readonly listening: boolean;
    readonly progress: ProgressDetail | null;
    readonly failed: Error | null;
    /** latest CPU ms the Worker spent per second of audio */
    readonly cpuMsPerAudioSecond: number;
    /** opens the microphone; rejects with EarshotError (e.g. code 'mic-denied') */
    start(): Promise<void>;
    stop(): void;
    destroy(): void;
    addEventListener<K extends keyof EarshotEventMap>(type: K, listener: (event: EarshotEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
    addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
    removeEventListener<K extends keyof EarshotEventMap>(type: K, listener: (event: EarshotEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
    removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** Starts the Worker and the WASM, begins the index download; resolves once the WASM runs. */
export function createRecognizer(options: RecognizerOptions): Promise<EarshotRecognizer>;

/** Maps a getUserMedia failure to an EarshotError with an actionable message. */
export function microphoneError(error: unknown): EarshotError;

/** <earshot-recognizer index="..." model="..." listen-seconds="15" continuous> */
export class EarshotRecognizerElement extends HTMLElement {
    readonly recognizer: EarshotRecognizer | null;
}

declare global {
    interface HTMLElementTagNameMap {
        'earshot-recognizer': EarshotRecognizerElement;
    }
}
