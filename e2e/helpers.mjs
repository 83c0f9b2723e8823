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

/** The built site's build-info.json; throws with the command to run when it is missing. */
export function requireSite() {
    const infoPath = path.join(siteDir, 'build-info.json');
    if (!fs.existsSync(infoPath)) {
        throw new Error(`${siteDir} is not built. Run scripts/demo.sh --build-only first (it builds the WASM, ` +
            'the demo index and the site).');
    }
    return JSON.parse(fs.readFileSync(infoPath, 'utf8'));
}

/** Parses an earshot container's metadata JSON (docs/DESIGN.md section 4). */
export function containerMeta(file) {
    const bytes = fs.readFileSync(file);
    if (bytes.subarray(0, 8).toString('latin1') !== 'EARSHOT\x1a') throw new Error(`${file} is not an earshot container`);
    const metaBytes = bytes.readUInt32LE(16);
    return JSON.parse(bytes.subarray(32, 32 + metaBytes).toString('utf8'));
}

/**
 * The index's shards with their songs, in manifest order.
 * @returns {{file: string, songs: {id: string, title: string, album: string, duration_s: number}[]}[]}
 */
export function indexShards() {
    const manifest = JSON.parse(fs.readFileSync(path.join(siteDir, 'index/manifest.json'), 'utf8'));
    return manifest.shards.map((s) => ({ file: s.file, songs: containerMeta(path.join(siteDir, 'index', s.file)).songs }));
}

/** Catalog rows (id, path, title, album) of a package fetched by scripts/fetch-demo-catalog.sh. */
export function catalog(packageName) {
    let tsv = path.join(cacheDir, 'packages', packageName, 'catalog.tsv');
    if (!fs.existsSync(tsv)) {
        tsv = execFileSync(path.join(repoRoot, 'scripts/fetch-demo-catalog.sh'), [packageName, cacheDir], { encoding: 'utf8' }).trim();
    }
    const [header, ...rows] = fs.readFileSync(tsv, 'utf8').trim().split('\n').map((l) => l.split('\t'));
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
 * Writes a WAV clip for the fake microphone: `seconds` of `source` from `startS`, mono at
 * `rateHz`, after `silenceS` seconds of digital silence, with white noise at `snrDb` (signal RMS
 * / noise RMS), 16-bit PCM.
 * @param {{source: string, startS: number, seconds: number, silenceS?: number, snrDb?: number, rateHz?: number, out: string, seed?: number, gain?: number}} o
 */
export function makeClip(o) {
    const rateHz = o.rateHz ?? 48000;
    const pad = o.silenceS ? ['pad', String(o.silenceS), '0'] : [];
    const raw = execFileSync('sox', [o.source, '-t', 'f32', '-r', String(rateHz), '-c', '1', '-',
        'trim', String(o.startS), String(o.seconds), ...pad], { maxBuffer: 1 << 28 });
    const x = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
    let sumSquares = 0;
    for (const v of x) sumSquares += v * v;
    const signalRms = Math.sqrt(sumSquares / x.length);
    const noiseRms = o.snrDb === undefined ? 0 : signalRms / 10 ** (o.snrDb / 20);
    const noise = noiseSource(o.seed ?? 1234);
    const gain = o.gain ?? 1;
    const pcm = Buffer.alloc(x.length * 2);
    for (let i = 0; i < x.length; i++) {
        const v = Math.max(-1, Math.min(1, gain * (x[i] + noiseRms * noise())));
        pcm.writeInt16LE(Math.round(v * 32767), 2 * i);
    }
    writeWav(o.out, pcm, { rateHz, format: 1, bytesPerSample: 2 });
    return { path: o.out, signalRms, noiseRms };
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
 * The benches' input: `seconds` of the demo index's first song, decoded by sox to 16 kHz mono
 * float32 (starting at 10 s when the song is long enough).
 * @param {number} seconds
 * @returns {{pcm: Float32Array, audioSeconds: number, song: object, row: object, startS: number}}
 */
export function benchAudio(seconds) {
    const song = indexShards()[0].songs[0];
    const row = catalog('hex-a-hop-data').find((r) => r.id === song.id);
    const startS = Math.max(0, Math.min(10, song.duration_s - seconds));
    const raw = execFileSync('sox', [row.path, '-t', 'f32', '-r', '16000', '-c', '1', '-', 'trim', String(startS), String(seconds)], { maxBuffer: 1 << 28 });
    const pcm = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
    return { pcm, audioSeconds: pcm.length / 16000, song, row, startS };
}
