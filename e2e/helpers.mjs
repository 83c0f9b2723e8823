// Shared helpers of the e2e tests: where the built site is, test clips (cut from a song, noise
// added at a given SNR, written as 16-bit WAV for Chromium's fake microphone), the site's
// index metadata, and launching Debian's chromium through playwright-core.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
export const siteDir = process.env.EARSHOT_SITE ?? path.join(repoRoot, 'out/site');
export const resultsDir = path.join(repoRoot, 'e2e/test-results');
export const cacheDir = process.env.EARSHOT_CACHE ?? path.join(repoRoot, 'out/cache');
export const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** The native CLI of the build the site was made with (scripts/demo.sh --build-only builds it). */
export const cliPath = path.join(repoRoot, process.env.BUILD ?? 'build', 'index-builder/earshot');
/** The corpus of ../shared/eval/fetch-corpus (docs/EVALUATION.md): train/ and eval/ sets. */
export const corpusDir = process.env.EARSHOT_CORPUS ?? path.join(os.homedir(), '.cache/earshot-corpus');

/** The built site's build-info.json; throws with the command to run when it is missing. */
export function requireSite() {
    const infoPath = path.join(siteDir, 'build-info.json');
    if (!fs.existsSync(infoPath)) {
        throw new Error(`${siteDir} is not built. Run scripts/demo.sh --build-only first (it builds the WASM, ` +
            'the demo index and the site).');
    }
    return JSON.parse(fs.readFileSync(infoPath, 'utf8'));
}

/**
 * Parses an earshot container's metadata JSON (docs/DESIGN.md section 4): of a file, or of the
 * bytes of one (e.g. a format 2 block).
 * @param {string | Buffer} file
 */
export function containerMeta(file) {
    const bytes = Buffer.isBuffer(file) ? file : fs.readFileSync(file);
    if (bytes.subarray(0, 8).toString('latin1') !== 'EARSHOT\x1a') throw new Error(`${Buffer.isBuffer(file) ? 'the bytes' : file} are not an earshot container`);
    const metaBytes = bytes.readUInt32LE(16);
    return JSON.parse(bytes.subarray(32, 32 + metaBytes).toString('utf8'));
}

/**
 * The index's shards (format 1) or blocks (format 2, walked in songs.esb: each block is a
 * container whose header gives its length) with their songs and bytes, in order. `what` names
 * one as the engine and the loader do ("shard-00000.es", "songs.esb block 0"); `file` is the
 * file that holds it, at `offset`.
 * @param {string} [indexDir] default: the demo site's index
 * @returns {{what: string, file: string, offset: number, bytes: Buffer,
 *            songs: {id: string, title: string, album: string, duration_s: number}[]}[]}
 */
export function indexShards(indexDir = path.join(siteDir, 'index')) {
    const manifest = JSON.parse(fs.readFileSync(path.join(indexDir, 'manifest.json'), 'utf8'));
    if (manifest.version !== 2) {
        return manifest.shards.map((s) => {
            const bytes = fs.readFileSync(path.join(indexDir, s.file));
            return { what: s.file, file: s.file, offset: 0, bytes, songs: containerMeta(bytes).songs };
        });
    }
    const songsFile = fs.readFileSync(path.join(indexDir, manifest.blocks.file));
    const blocks = [];
    for (let offset = 0; offset < songsFile.length;) {
        const length = Number(songsFile.readBigUInt64LE(offset + 24));  // the container's file_bytes
        const bytes = songsFile.subarray(offset, offset + length);
        blocks.push({ what: `${manifest.blocks.file} block ${blocks.length}`, file: manifest.blocks.file, offset, bytes, songs: containerMeta(bytes).songs });
        offset += length;
    }
    return blocks;
}

/**
 * Loads the index folder into a WASM Engine that has its model, as the page's Worker does
 * (manifest, quantizer, format 2 directory, then every shard or block); `check` gets each
 * status (default: throws on failure). Returns the manifest.
 * @param {any} engine @param {string} [indexDir] default: the demo site's index
 * @param {(status: {ok: boolean, message: string}) => void} [check]
 */
export function addIndexFiles(engine, indexDir = path.join(siteDir, 'index'), check = undefined) {
    const must = check ?? ((status) => { if (!status.ok) throw new Error(status.message); });
    const read = (name) => fs.readFileSync(path.join(indexDir, name));
    const text = read('manifest.json').toString('utf8');
    const m = JSON.parse(text);
    must(engine.loadManifest(text));
    must(engine.addQuantizer(read(m.quantizer.file), m.quantizer.file));
    if (m.version === 2) {
        must(engine.addDirectory(read(m.directory.file), m.directory.file));
        const songs = read(m.blocks.file);
        JSON.parse(engine.shardRanges()).forEach((r, b) =>
            must(engine.addShard(songs.subarray(r.offset, r.offset + r.bytes), `${m.blocks.file} block ${b}`)));
    } else {
        for (const s of m.shards) must(engine.addShard(read(s.file), s.file));
    }
    return m;
}

/**
 * Builds an index of the demo package's songs with the CLI and the site's model into `out`
 * (replaced); `args` are extra `earshot build` options (e.g. ['--format', '2', '--block-kb', '16']).
 * @returns {{rows: {id: string, path: string, title: string, album: string}[], manifest: any}}
 */
export function buildIndex(out, args = []) {
    const rows = catalog('hex-a-hop-data');
    const tsv = `${out}.tsv`;
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(tsv, ['id\tpath\ttitle\talbum', ...rows.map((r) => [r.id, r.path, r.title, r.album].join('\t'))].join('\n') + '\n');
    execFileSync(cliPath, ['build', '--quiet', '--model', path.join(siteDir, 'models/earshot.emod'), ...args, '--out', out, tsv],
        { stdio: ['ignore', 'ignore', 'inherit'] });
    return { rows, manifest: JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) };
}

/**
 * The benchmarks' quantile: of the numbers among `xs` (others, e.g. null for a figure a run did
 * not give, are left out), sorted, the one at floor(q * n) (the upper median for q = 0.5); NaN
 * when there is none.
 * @param {unknown[]} xs @param {number} q
 */
export function quantile(xs, q) {
    const s = /** @type {number[]} */ (xs.filter((x) => typeof x === 'number')).sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
}

/** Cache API stand-in for node (it has none): a Map of URL -> bytes behind the same interface. */
export class MemoryCacheStorage {
    constructor() { this.caches = new Map(); }
    async open(name) {
        if (!this.caches.has(name)) {
            const entries = new Map();
            this.caches.set(name, {
                entries,
                match: async (url) => (entries.has(url) ? new Response(entries.get(url)) : undefined),
                put: async (url, response) => { entries.set(url, new Uint8Array(await response.arrayBuffer())); },
                delete: async (url) => entries.delete(url),
                keys: async () => [...entries.keys()].map((url) => ({ url })),
            });
        }
        return this.caches.get(name);
    }
}

/** Catalog rows (id, path, title, album) of a package fetched by scripts/fetch-demo-catalog.sh. */
export function catalog(packageName) {
    let tsv = path.join(cacheDir, 'packages', packageName, 'catalog.tsv');
    if (!fs.existsSync(tsv)) {
        tsv = execFileSync(path.join(repoRoot, 'scripts/fetch-demo-catalog.sh'), [packageName, cacheDir], { encoding: 'utf8' }).trim();
    }
    return readTsv(tsv);
}

/** The rows of a TSV file with a header line, as objects keyed by its column names. */
function readTsv(file) {
    const [header, ...rows] = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split('\t'));
    return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

/** Deterministic noise: xorshift32 -> approximately Gaussian (sum of 4 uniforms). */
function noiseSource(seed) {
    let s = seed >>> 0 || 1;
    const uniform = () => {
        s ^= s << 13; s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5; s >>>= 0;
        return s / 4294967296;
    };
    return () => (uniform() + uniform() + uniform() + uniform() - 2) * Math.sqrt(3);
}

/**
 * `seconds` of `source` from `startS` (the whole file when `seconds` is undefined), mono float
 * samples at `rateHz` (sox decodes and resamples).
 */
export function decode(source, startS, seconds, rateHz) {
    const trim = seconds === undefined ? [] : ['trim', String(startS), String(seconds)];
    const raw = execFileSync('sox', ['-V1', source, '-t', 'f32', '-r', String(rateHz), '-c', '1', '-', ...trim],
        { maxBuffer: 1 << 28 });
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
}

/**
 * Writes a WAV clip for the fake microphone: `seconds` of `source` from `startS`, mono at
 * `rateHz`, after `silenceS` seconds of digital silence, with white noise at `snrDb` (signal RMS
 * / noise RMS, over the whole clip), 16-bit PCM.
 * @param {{source: string, startS: number, seconds: number, silenceS?: number, snrDb?: number, rateHz?: number, out: string, seed?: number, gain?: number}} o
 */
export function makeClip(o) {
    const parts = [{ source: o.source, startS: o.startS, seconds: o.seconds }];
    if (o.silenceS) parts.unshift({ seconds: o.silenceS });
    return makeListenClip({ ...o, parts, snrDb: o.snrDb === undefined ? undefined : { of: 'clip', db: o.snrDb } });
}

/**
 * Writes a listen as the fake microphone plays it: `parts` one after another, each a piece of a
 * song ({source, startS, seconds}) or a gap ({seconds, noiseDbfs}: white noise at that RMS level,
 * digital silence without it), mono at `rateHz`, 16-bit PCM. `snrDb` adds white noise at that
 * SNR: {of: 'clip', db} relative to the whole clip's RMS (over every part), {of: 'music', db}
 * only over the song parts, relative to each one's RMS.
 * @param {{parts: ({source: string, startS: number, seconds: number} | {seconds: number, noiseDbfs?: number})[],
 *          snrDb?: {of: 'clip' | 'music', db: number}, rateHz?: number, out: string, seed?: number, gain?: number}} o
 * @returns {{path: string, signalRms: number, noiseRms: number, partStartsS: number[]}}
 */
export function makeListenClip(o) {
    const rateHz = o.rateHz ?? 48000;
    const noise = noiseSource(o.seed ?? 1234);
    const rmsOf = (x) => Math.sqrt(x.reduce((sum, v) => sum + v * v, 0) / Math.max(1, x.length));
    const pieces = o.parts.map((part) => {
        if ('source' in part) return { music: true, x: decode(part.source, part.startS, part.seconds, rateHz) };
        const x = new Float32Array(Math.round(part.seconds * rateHz));
        if (part.noiseDbfs !== undefined) {
            const level = 10 ** (part.noiseDbfs / 20);
            for (let i = 0; i < x.length; i++) x[i] = level * noise();
        }
        return { music: false, x };
    });
    const x = new Float32Array(pieces.reduce((n, p) => n + p.x.length, 0));
    const partStartsS = [];
    let at = 0;
    for (const p of pieces) {
        partStartsS.push(at / rateHz);
        x.set(p.x, at);
        at += p.x.length;
    }
    const signalRms = rmsOf(x);
    let noiseRms = 0;
    if (o.snrDb?.of === 'clip') {
        noiseRms = signalRms / 10 ** (o.snrDb.db / 20);
        for (let i = 0; i < x.length; i++) x[i] += noiseRms * noise();
    } else if (o.snrDb?.of === 'music') {
        at = 0;
        for (const p of pieces) {
            const rms = p.music ? rmsOf(p.x) / 10 ** (o.snrDb.db / 20) : 0;
            if (p.music) for (let i = at; i < at + p.x.length; i++) x[i] += rms * noise();
            noiseRms = Math.max(noiseRms, rms);
            at += p.x.length;
        }
    }
    const gain = o.gain ?? 1;
    const pcm = Buffer.alloc(x.length * 2);
    for (let i = 0; i < x.length; i++) {
        const v = Math.max(-1, Math.min(1, gain * x[i]));
        pcm.writeInt16LE(Math.round(v * 32767), 2 * i);
    }
    writeWav(o.out, pcm, { rateHz, format: 1, bytesPerSample: 2 });
    return { path: o.out, signalRms, noiseRms, partStartsS };
}

/**
 * Writes mono float samples as a 32-bit float WAV: exact, so a native tool reads the very
 * samples a page heard.
 * @param {string} file @param {Float32Array} samples @param {number} rateHz
 */
export function writeWavFloat(file, samples, rateHz) {
    writeWav(file, Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength),
        { rateHz, format: 3, bytesPerSample: 4 });
}

/**
 * A mono WAV file of `data`: format 1 (integer PCM) or 3 (IEEE float).
 * @param {string} file @param {Buffer} data @param {{rateHz: number, format: 1 | 3, bytesPerSample: number}} f
 */
function writeWav(file, data, { rateHz, format, bytesPerSample }) {
    const header = Buffer.alloc(44);
    header.write('RIFF', 0, 'latin1');
    header.writeUInt32LE(36 + data.length, 4);
    header.write('WAVEfmt ', 8, 'latin1');
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(format, 20);
    header.writeUInt16LE(1, 22);          // mono
    header.writeUInt32LE(rateHz, 24);
    header.writeUInt32LE(rateHz * bytesPerSample, 28);
    header.writeUInt16LE(bytesPerSample, 32);
    header.writeUInt16LE(8 * bytesPerSample, 34);
    header.write('data', 36, 'latin1');
    header.writeUInt32LE(data.length, 40);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.concat([header, data]));
}

/**
 * Launches chromium headless with a fresh profile. `audioFile` feeds the fake microphone;
 * `denyMicrophone` makes getUserMedia fail as if the user had refused.
 * @returns {Promise<{context: import('playwright-core').BrowserContext, close: () => Promise<void>}>}
 */
export async function launchChromium({ audioFile, denyMicrophone = false } = {}) {
    const { chromium } = await import('playwright-core');
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-chromium-'));
    const args = [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required',
    ];
    if (denyMicrophone) args.push('--deny-permission-prompts');
    else args.push('--use-fake-ui-for-media-stream');
    if (audioFile) args.push(`--use-file-for-fake-audio-capture=${audioFile}`);
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: chromiumPath, headless: true, args, viewport: { width: 480, height: 860 },
        // launchPersistentContext would add its own flags that fight ours (e.g. mute audio).
        ignoreDefaultArgs: ['--mute-audio'],
    });
    return {
        context,
        close: async () => {
            await context.close().catch(() => {});
            fs.rmSync(profile, { recursive: true, force: true });
        },
    };
}

/**
 * The benches' input: `seconds` of the demo index's first song (or its `songNumber`-th, from 0,
 * in manifest order), decoded by sox to 16 kHz mono float32 (starting at 10 s when the song is
 * long enough).
 * @param {number} seconds @param {number} [songNumber]
 * @returns {{pcm: Float32Array, audioSeconds: number, song: object, row: object, startS: number}}
 */
export function benchAudio(seconds, songNumber = 0) {
    const song = indexShards().flatMap((s) => s.songs)[songNumber];
    const row = catalog('hex-a-hop-data').find((r) => r.id === song.id);
    const startS = Math.max(0, Math.min(10, song.duration_s - seconds));
    const pcm = decode(row.path, startS, seconds, 16000);
    return { pcm, audioSeconds: pcm.length / 16000, song, row, startS };
}

/**
 * The benches' speech without music: the train set's British Hedgewars voices (the `speech`
 * rows of train/noise.tsv whose id starts with hedgewars-british-, one actor's ~60 lines of
 * 1–2 s), one after another in list order, repeated until `seconds`, 16 kHz mono float32.
 * Null when the corpus is absent.
 * @param {number} seconds
 * @returns {Float32Array | null}
 */
export function benchSpeech(seconds) {
    const tsv = path.join(corpusDir, 'train/noise.tsv');
    if (!fs.existsSync(tsv)) return null;
    const files = readTsv(tsv).filter((r) => r.category === 'speech' && r.id.startsWith('hedgewars-british-'))
        .map((r) => path.resolve(path.dirname(tsv), r.path));
    if (files.length === 0) return null;
    const lines = files.map((file) => decode(file, 0, undefined, 16000));
    const pcm = new Float32Array(Math.round(seconds * 16000));
    for (let at = 0, i = 0; at < pcm.length; i = (i + 1) % lines.length) {
        pcm.set(lines[i].subarray(0, pcm.length - at), at);
        at += lines[i].length;
    }
    return pcm;
}

/**
 * The benches' room tone: `seconds` of white noise at `dbfs` RMS (deterministic), 16 kHz.
 * @param {number} seconds @param {number} dbfs
 */
export function benchRoomTone(seconds, dbfs) {
    const noise = noiseSource(4321);
    const level = 10 ** (dbfs / 20);
    return Float32Array.from({ length: Math.round(seconds * 16000) }, () => level * noise());
}
