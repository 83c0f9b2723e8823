// The page's lazy mode in Chromium on a large index (a benchmark, not a test: it prints figures
// and asserts nothing; docs/SCALE.md, "Lazy answers").
//   node e2e/bench-web-lazy.mjs --index DIR --queries QDIR [--length 10] [--clips 24] [--out FILE]
// DIR: a lazy index (built with --pair-keys, e.g. by bench/make_scale_index.cc) of the site's
// model; QDIR: a make-queries folder of the public eval (truth.tsv, queries/). The first --clips
// queries of --length seconds in truth.tsv order, in the index or not, each become a listen:
// the clip then 6 s of silence through Chromium's fake microphone, a fresh browser profile (a
// cold cache) per clip, the built site (scripts/demo.sh --build-only) with DIR as its index,
// served by scripts/serve.mjs (which reads large files a range at a time).
// Per listen: the answer and whether it is right, seconds of audio heard, the Range requests
// and bytes of the listen, the Worker's CPU ms per second of audio (embedding, gate and looks),
// the bytes and ms to 'ready', and where in the clip the audio the recognizer heard began
// (`startMs`: the fake microphone plays its file from when the page opens it, and the listen
// takes the audio a little later; where the window falls against the model's hop changes the
// embeddings, and with them which look answers). Prints medians and writes one JSON line per
// listen to --out (default out/bench-web-lazy.jsonl).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startServer } from '../scripts/serve.mjs';
import { launchChromium, quantile, repoRoot, requireSite, siteDir } from './helpers.mjs';

const args = process.argv.slice(2);
const arg = (name, fallback) => {
    const i = args.indexOf(name);
    if (i >= 0 && args[i + 1] !== undefined) return args[i + 1];
    if (fallback === undefined) throw new Error(`bench-web-lazy: missing ${name}`);
    return fallback;
};
const indexDir = path.resolve(arg('--index'));
const queriesDir = path.resolve(arg('--queries'));
const length = Number(arg('--length', 10));
const nClips = Number(arg('--clips', 24));
const outFile = path.resolve(repoRoot, arg('--out', 'out/bench-web-lazy.jsonl'));

requireSite();
const manifest = JSON.parse(fs.readFileSync(path.join(indexDir, 'manifest.json'), 'utf8'));
if (!manifest.pair_keys) throw new Error(`${indexDir} has no pair-key level: build it with --pair-keys`);

// The site with the lazy index in place of the demo's (links: nothing large is copied).
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-bench-lazy-'));
const root = path.join(tmp, 'site');
fs.mkdirSync(root);
for (const entry of fs.readdirSync(siteDir)) {
    if (entry !== 'index') fs.symlinkSync(path.join(siteDir, entry), path.join(root, entry));
}
fs.symlinkSync(indexDir, path.join(root, 'index'));
fs.writeFileSync(path.join(root, 'bare.html'), '<!doctype html><title>earshot</title><link rel="icon" href="icons/icon.svg" type="image/svg+xml">\n');

const rows = fs.readFileSync(path.join(queriesDir, 'truth.tsv'), 'utf8').trim().split('\n').slice(1)
    .map((line) => line.split('\t')).map(([query, song, , lengthS, condition]) => ({ query, song, lengthS: Number(lengthS), condition }))
    .filter((r) => r.lengthS === length).slice(0, nClips);

/**
 * Where `heard` (the first second the recognizer got, 16 kHz) begins in the clip file `wav`, in
 * ms: the lag within the clip's first 0.5 s that correlates best; null for a quiet start.
 */
function startInClip(wav, heard) {
    if (heard.length < 8000) return null;
    const raw = execFileSync('sox', [wav, '-t', 'f32', '-r', '16000', '-c', '1', '-'], { maxBuffer: 1 << 26 });
    const clip = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
    const n = 8000;
    let best = null;
    let bestScore = 0;
    for (let lag = 0; lag < 8000 && lag + n <= clip.length; lag++) {
        let dot = 0;
        let norm = 0;
        for (let i = 0; i < n; i++) {
            dot += heard[i] * clip[lag + i];
            norm += clip[lag + i] * clip[lag + i];
        }
        const score = norm > 0 ? dot / Math.sqrt(norm) : 0;
        if (score > bestScore) {
            bestScore = score;
            best = lag;
        }
    }
    return best === null ? null : best / 16;
}

const server = await startServer({ root });
const results = [];
try {
    for (const row of rows) {
        const wav = path.join(tmp, 'clip.wav');
        // The clip, then silence: the fake microphone loops its file, a listen must not hear it twice.
        execFileSync('sox', [path.join(queriesDir, 'queries', row.query), '-r', '16000', '-c', '1', '-b', '16', wav, 'pad', '0', '6']);
        const browser = await launchChromium({ audioFile: wav });
        try {
            const page = browser.context.pages()[0] ?? await browser.context.newPage();
            await page.goto(`${server.url}bare.html`);
            const got = await page.evaluate(async () => {
                const { createRecognizer } = await import('./earshot.js');
                const t0 = performance.now();
                const r = await createRecognizer({ indexUrl: 'index/', modelUrl: 'models/earshot.emod', indexMode: 'lazy', maxListenSeconds: 15,
                    keepListenAudio: true });
                const progress = await new Promise((resolve, reject) => {
                    r.addEventListener('progress', (e) => { if (e.detail.done) resolve(e.detail); });
                    r.ready.catch(reject);
                });
                const readyMs = performance.now() - t0;
                let cpuMs = 0;
                let audioS = 0;
                r.addEventListener('stats', (e) => { cpuMs += e.detail.cpuMsPerAudioSecond * e.detail.audioSeconds; audioS += e.detail.audioSeconds; });
                const outcome = new Promise((resolve) => {
                    r.addEventListener('match', (e) => resolve({ type: 'match', detail: e.detail }));
                    r.addEventListener('nomatch', (e) => resolve({ type: 'nomatch', detail: e.detail }));
                    r.addEventListener('error', (e) => resolve({ type: 'error', detail: e.detail }));
                });
                const t1 = performance.now();
                await r.start();
                const answer = await outcome;
                const listenMs = performance.now() - t1;
                r.destroy();
                const heard = answer.detail.audio ? Array.from(answer.detail.audio.samples.subarray(0, 16000)) : [];
                if (answer.detail.audio) delete answer.detail.audio;
                return { ...answer, heard, preloadBytes: progress.bytesLoaded, readyMs, listenMs, cpuMsPerAudioSecond: audioS > 0 ? cpuMs / audioS : null };
            });
            const song = got.type === 'match' ? got.detail.id : null;
            const result = {
                query: row.query, truth: row.song, condition: row.condition, answer: got.type, song,
                right: row.song === '-' ? song === null : song === row.song,
                listenedSeconds: got.detail.listenedSeconds, requests: got.detail.lazy?.requests, bytes: got.detail.lazy?.bytes,
                cpuMsPerAudioSecond: got.cpuMsPerAudioSecond, preloadBytes: got.preloadBytes, readyMs: got.readyMs, listenMs: got.listenMs,
                startMs: startInClip(wav, got.heard),
                error: got.type === 'error' ? got.detail.message : undefined,
            };
            results.push(result);
            console.log(JSON.stringify(result));
        } finally {
            await browser.close();
        }
    }
} finally {
    await server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
}

fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, results.map((r) => JSON.stringify(r)).join('\n') + '\n');
const median = (xs) => quantile(xs, 0.5);
const p90 = (xs) => quantile(xs, 0.9);
const inside = results.filter((r) => r.truth !== '-');
const outside = results.filter((r) => r.truth === '-');
const kb = (x) => (x / 1024).toFixed(0);
console.log(`bench-web-lazy: ${manifest.songs} songs, ${results.length} listens of ${length} s clips (${inside.length} in the index)`);
console.log(`  right song: ${inside.filter((r) => r.right).length}/${inside.length}; songs named for clips not in the index: ` +
    `${outside.filter((r) => !r.right).length}/${outside.length}; errors: ${results.filter((r) => r.answer === 'error').length}`);
console.log(`  per listen: KB ${kb(median(results.map((r) => r.bytes)))} median, ${kb(p90(results.map((r) => r.bytes)))} p90; ` +
    `requests ${median(results.map((r) => r.requests))} median; answered after ${median(inside.filter((r) => r.right).map((r) => r.listenedSeconds))} s ` +
    '(median, right answers)');
const starts = results.map((r) => r.startMs).filter((x) => x !== null);
console.log(`  the heard audio began ${median(starts)} ms into the clip (median; ${Math.min(...starts)}-${Math.max(...starts)})`);
console.log(`  CPU ${median(results.map((r) => r.cpuMsPerAudioSecond)).toFixed(1)} ms per second of audio (median); ` +
    `before the first listen: ${(median(results.map((r) => r.preloadBytes)) / 1e6).toFixed(1)} MB, ready after ` +
    `${(median(results.map((r) => r.readyMs)) / 1000).toFixed(1)} s (median)`);
