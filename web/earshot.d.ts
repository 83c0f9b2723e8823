// Types of the earshot web library (web/earshot.js) and its web component.

export interface RecognizerOptions {
    /** manifest.json URL, or the folder holding it */
    indexUrl: string;
    /** .emod model URL: the model the index was built with (checked against manifest.model_hash) */
    modelUrl: string;
    /**
     * 'full' (default): download the whole index, then work offline with nothing revealed.
     * 'lazy' (a format 2 index built with --pair-keys): download the quantizer, the headers of
     * the directory pages and the pair keys once, then per listen only the byte ranges it needs
     * (HTTP Range requests), cached under lazyCacheMB; the server learns which parts a listen
     * needed, which name the song (docs/SCALE.md, "What the requests reveal"). No continuous mode.
     */
    indexMode?: 'full' | 'lazy';
    /** lazy mode: megabytes of fetched index parts kept in the Cache API (default 64), least recently used dropped first */
    lazyCacheMB?: number;
    /**
     * lazy mode, advanced: overrides of the core's LazyIndexParams (core/lazy_index.h), whole
     * numbers; `{more_candidates: 0}` turns the second round of candidates off (fewer bytes when
     * a look finds no song, fewer songs found). An unknown key or a wrong type is a fatal
     * 'config' error.
     */
    lazyParams?: {
        more_candidates?: number; wide_keys_per_pair?: number; wide_pair_key_budget?: number;
        pair_key_budget?: number; max_keys_per_pair?: number; max_candidates?: number;
        max_query_postings?: number; background_blocks?: number; first_look_pairs?: number;
        short_look_pairs?: number; both_spans_max_pairs?: number; vote_slack?: number;
        key_weight?: number; block_cache_bytes?: number; pair_cache_bytes?: number;
        directory_cache_bytes?: number;
    };
    /**
     * lazy mode: a whole index of some of the lazy index's songs (its most played, say: `earshot
     * build --top N` with the same model), downloaded first
     * and matched live with the listen rule as in the full mode: those songs are answered
     * offline and, when answered before the first look (3 s of music with a hot tier), without
     * any request
     */
    hotIndexUrl?: string;
    /**
     * a listen ends with 'nomatch' after this many seconds of audio without a song (default 15;
     * 0: no limit). The core decides (core/listen.h), as `earshot query --live` does.
     */
    maxListenSeconds?: number;
    /**
     * keep listening (default false: the first match or nomatch ends the listen and releases the
     * microphone): 'match' for each new song and for a song that returns (`returned`),
     * 'music-stopped' when the music stops; no 'nomatch'; until stop()
     */
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
        /** the listen rule: consecutive passing looks naming the same song to commit */
        confirm_looks?: number;
        /** query hops without music that close the music gate (and report 'music-stopped') */
        gate_close_hops?: number;
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
    /**
     * most memory (MB) the recognizer's WebAssembly heap may use; default and upper bound: the
     * build's maximum, 1024 MB. A model or quantizer that would not fit is a fatal
     * 'out-of-memory' error, a shard a non-fatal one (its songs are left out); checked before
     * loading, so the page can destroy() and create a recognizer again
     */
    memoryLimitMB?: number;
}

export interface ReadyDetail {
    modelName: string;
    modelHash: string;
    backend: 'simd' | 'scalar';
    indexMode?: 'full' | 'lazy';
    songsLoaded: number;
    shardsLoaded: number;
    shardsTotal: number;
    /** ms from createRecognizer() to the first usable shard (or block) */
    msSinceInit: number;
}

export interface ProgressDetail {
    /** 'directory' and blocks (as 'shard') in format 2 */
    phase: 'manifest' | 'model' | 'quantizer' | 'directory' | 'shard' | 'done';
    /** the index format: 1 (shard files) or 2 (blocks of one songs file, counted as shards here) */
    indexVersion: 1 | 2;
    /** lazy: shards count the background blocks (all searchable songs are songsLoaded) */
    indexMode: 'full' | 'lazy';
    shardsLoaded: number;
    shardsTotal: number;
    /** shards rejected (bad size or SHA-256, or refused by the core) */
    shardsFailed: number;
    /** index bytes loaded and verified (quantizer + directory + shards or blocks) */
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
    /** lazy mode: bytes of fetched index parts in the Cache API now */
    lazyCachedBytes?: number;
    /** lazy mode with a hot tier: its songs and bytes, and whether all of it is cached */
    hotSongs?: number;
    hotBytes?: number;
    hotOfflineReady?: boolean;
}

/** Lazy mode: what a listen fetched. */
export interface LazyListenFigures {
    /** Range requests this listen made, and the bytes they brought (cached parts cost none) */
    requests: number;
    bytes: number;
    /** bytes of index parts cached now */
    cachedBytes: number;
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
    /** position in the song at the moment of the answer (listenedSeconds into the listen), seconds */
    offsetSeconds: number;
    /** the core's decision statistic (aligned similarity less the background) of the committing look */
    score: number;
    /** the listen rule's threshold for that look (calibrated for a whole listen) */
    threshold: number;
    /** seconds of audio consumed since start() when the core answered (`answer_s` of the CLI) */
    listenedSeconds: number;
    /** continuous mode: this song was reported earlier in the session (it returned) */
    returned: boolean;
    /** lazy mode */
    lazy?: LazyListenFigures;
    /** with keepListenAudio (one-shot listens) */
    audio?: ListenAudio;
}

/** The listen ended without a song: nothing passed the listen rule within maxListenSeconds. */
export interface NoMatchDetail {
    /** seconds of audio consumed when the core gave up */
    listenedSeconds: number;
    /** lazy mode */
    lazy?: LazyListenFigures;
    /** lazy mode: the listen needed index parts that are not cached, and the network is unreachable */
    needsNetwork?: boolean;
    /** with keepListenAudio */
    audio?: ListenAudio;
}

/** Continuous mode: the music gate closed after a song (no music heard for a while). */
export interface MusicStoppedDetail {
    /** seconds of audio consumed since start() when the core noticed */
    listenedSeconds: number;
}

export type ErrorCode =
    | 'mic-denied' | 'mic-missing' | 'mic-busy' | 'mic-error' | 'mic-unsupported' | 'audio'
    | 'network' | 'http' | 'manifest-invalid' | 'model-mismatch' | 'model-invalid'
    | 'index-corrupt' | 'shard-corrupt' | 'wasm' | 'worker' | 'config' | 'internal'
    /** lazy mode: a listen needed index parts that are not cached, without network */
    | 'offline'
    /** lazy mode: the server sent a whole file when asked for a byte range */
    | 'range-unsupported'
    /** a file would not fit in memoryLimitMB (checked before loading), or the heap ran out */
    | 'out-of-memory'
    /** the WebAssembly module stopped on an internal error: create the recognizer again */
    | 'wasm-crashed';

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
    'music-stopped': CustomEvent<MusicStoppedDetail>;
    error: CustomEvent<ErrorDetail>;
    level: CustomEvent<LevelDetail>;
    listening: CustomEvent<{ listening: boolean; sampleRate?: number }>;
    /** every ~2 s of audio, and before a listen's match or nomatch: the Worker's CPU on the
     *  audio since the last report (a lazy look's fetches and Cache API writes not counted),
     *  whether music is heard, and the WASM heap (malloc's bytes in use, the memory's size) */
    stats: CustomEvent<{ cpuMsPerAudioSecond: number; audioSeconds: number; hearsMusic: boolean;
        allocatedBytes: number; heapBytes: number }>;
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
    /** whether the core's music gate heard music at the latest 'stats' */
    readonly hearsMusic: boolean;
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
