// Browser performance figures for docs/PERFORMANCE-web.md (a benchmark, not a test: it prints
// numbers and asserts nothing).
//   node e2e/bench-web.mjs [--seconds 60] [--native-build build]
// Measures, on the built site (scripts/demo.sh --build-only):
//   - WASM in node and in Chromium (main thread): front-end ms per second of audio, embedding
//     ms and GFLOP/s (simd and scalar kernels), the whole streaming recognizer (front-end +
//     network + search) in CPU ms per second of audio, search = whole - front-end - network;
//   - native: the same recognizer through `earshot query` (simd and xnnpack backends; the CLI's
//     start-up measured on a 1 s clip and subtracted);
//   - Chromium page load: ms to 'ready' (first shard usable) and to the whole index, first and
//     second visit, and the bytes each visit downloaded, by kind.
// Writes out/bench-web.json too.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startServer } from '../scripts/serve.mjs';
import { benchAudio, launchChromium, repoRoot, requireSite, siteDir } from './helpers.mjs';

const args = process.argv.slice(2);
const arg = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const seconds = Number(arg('--seconds', 60));
const nativeBuild = path.resolve(repoRoot, arg('--native-build', process.env.BUILD ?? 'build'));

const info = requireSite();
const { pcm, audioSeconds, song, row, startS } = benchAudio(seconds);

/**
 * The measurement, run verbatim in node and in the page (Playwright ships its source): it gets
 * only serializable arguments and fetches the site's files over HTTP itself.
 */
async function measure({ glueUrl, baseUrl, files, pcmBase64 }) {
    const get = async (rel) => new Uint8Array(await (await fetch(new URL(rel, baseUrl))).arrayBuffer());
    const { default: createModule } = await import(glueUrl);
    const module = await createModule({ wasmBinary: await get('wasm/earshot-core.wasm') });
    const engine = new module.Engine();
    const must = (s) => { if (!s.ok) throw new Error(s.message); };
    must(engine.loadModel(await get('models/earshot.emod')));
    must(engine.loadManifest(new TextDecoder().decode(await get('index/manifest.json'))));
    for (const name of files) {
        const bytes = await get(`index/${name}`);
        must(name.startsWith('quantizer') ? engine.addQuantizer(bytes, name) : engine.addShard(bytes, name));
    }
    const model = JSON.parse(engine.modelInfo());
    const embedSimd = JSON.parse(engine.benchEmbed('simd', 300));
    const embedScalar = JSON.parse(engine.benchEmbed('scalar', 60));
    const frontend = JSON.parse(engine.benchFrontend(6400));  // 100 s of audio
    const bin = atob(pcmBase64);
    const pcm = new Float32Array(bin.length / 4);
    const pcmBytes = new Uint8Array(pcm.buffer);
    for (let i = 0; i < bin.length; i++) pcmBytes[i] = bin.charCodeAt(i);
    const whole = {};
    for (const backend of ['simd', 'scalar']) {
        must(engine.createRecognizer(backend, '{}'));
        const block = 1024;   // 64 ms, what the AudioWorklet delivers
        const address = engine.inputPointer(block);
        let results = 0;
        const t0 = performance.now();
        for (let i = 0; i < pcm.length; i += block) {
            const piece = pcm.subarray(i, Math.min(pcm.length, i + block));
            module.HEAPF32.set(piece, address >> 2);
            engine.push(piece.length);
            if (engine.poll()) results++;
        }
        const ms = performance.now() - t0;
        const final = JSON.parse(engine.finish());
        whole[backend] = { ms, results, title: final.best?.title, score: final.score };
    }
    return { model, embedSimd, embedScalar, frontend, whole };
}

const manifest = JSON.parse(fs.readFileSync(path.join(siteDir, 'index/manifest.json'), 'utf8'));
const indexFiles = [manifest.quantizer.file, ...manifest.shards.map((s) => s.file)];
const pcmBase64 = Buffer.from(pcm.buffer).toString('base64');

function summarize(where, m) {
    const embeddingsPerSecond = 16000 / (m.model.query_hop_frames * 250);   // the recognizer's query hop
    const out = {
        where,
        frontend_ms_per_audio_s: m.frontend.ms_per_audio_second,
        embed_ms_simd: m.embedSimd.ms_per_embedding, gflops_simd: m.embedSimd.gflops,
        embed_ms_scalar: m.embedScalar.ms_per_embedding, gflops_scalar: m.embedScalar.gflops,
        whole_ms_per_audio_s_simd: m.whole.simd.ms / audioSeconds,
        whole_ms_per_audio_s_scalar: m.whole.scalar.ms / audioSeconds,
        embeddings_per_audio_s: embeddingsPerSecond,
        matched_title: m.whole.simd.title,
    };
    out.network_ms_per_audio_s_simd = out.embed_ms_simd * embeddingsPerSecond;
    out.search_ms_per_audio_s_simd = out.whole_ms_per_audio_s_simd - out.frontend_ms_per_audio_s - out.network_ms_per_audio_s_simd;
    return out;
}

const results = { date: new Date().toISOString(), cpu: os.cpus()[0]?.model, audio_seconds: audioSeconds, site: info, runs: [] };

const server = await startServer({ root: siteDir });

// --- node
{
    const m = await measure({ glueUrl: path.join(siteDir, 'wasm/earshot-core.mjs'), baseUrl: server.url, files: indexFiles, pcmBase64 });
    results.runs.push(summarize(`WASM, node ${process.version}`, m));
}

// --- Chromium
const micClip = path.join(os.tmpdir(), `earshot-bench-mic-${process.pid}.wav`);
execFileSync('sox', [row.path, '-r', '48000', '-c', '1', '-b', '16', micClip, 'trim', String(startS), '20']);
const browser = await launchChromium({ audioFile: micClip });
try {
    const page = browser.context.pages()[0] ?? await browser.context.newPage();
    // Page load -> ready, first and second visit.
    await browser.context.addInitScript(() => {
        const marks = {};
        window.__earshotMarks = marks;
        document.addEventListener('ready', () => { marks.ready ??= performance.now(); }, true);
        document.addEventListener('progress', (e) => {
            if (e.detail?.done) { marks.done ??= performance.now(); marks.bytesDownloaded = e.detail.bytesDownloaded; }
        }, true);
    });
    results.page_load = [];
    for (const visit of ['first visit', 'second visit (cached)']) {
        const logStart = server.log.length;
        if (visit === 'first visit') await page.goto(server.url);
        else await page.reload();
        await page.waitForFunction(() => window.__earshotMarks?.done !== undefined, null, { timeout: 60_000 });
        const marks = await page.evaluate(() => window.__earshotMarks);
        const bytes = { shell: 0, wasm: 0, model: 0, index: 0 };
        for (const r of server.log.slice(logStart)) {
            const kind = r.path.startsWith('/index/') ? 'index' : r.path.startsWith('/models/') ? 'model'
                : r.path.startsWith('/wasm/') ? 'wasm' : 'shell';
            bytes[kind] += r.responseBytes;
        }
        results.page_load.push({ visit, ms_to_ready: marks.ready, ms_to_whole_index: marks.done, bytes_from_server: bytes });
        await page.waitForTimeout(1500);   // let the service worker finish installing
    }
    // Kernels and the whole pipeline, in the page's main thread.
    await page.goto(`${server.url}index.html`);
    const version = browser.context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent)).match(/Chrome\/([\d.]+)/)?.[1];
    const m = await page.evaluate(measure, { glueUrl: `${server.url}wasm/earshot-core.mjs`, baseUrl: server.url, files: indexFiles, pcmBase64 });
    results.runs.push(summarize(`WASM, Chromium ${version} (page main thread)`, m));

    // The real path: fake microphone -> AudioWorklet -> Worker, 12 s of listening; the Worker
    // reports its CPU ms per second of audio (resampling included when the context is not 16 kHz).
    const live = await page.evaluate(async () => {
        const { createRecognizer } = await import('./earshot.js');
        const r = await createRecognizer({ indexUrl: 'index/', modelUrl: 'models/earshot.emod', continuous: true });
        await r.ready;
        const stats = [];
        let sampleRate = 0;
        r.addEventListener('stats', (e) => stats.push(e.detail));
        r.addEventListener('listening', (e) => { if (e.detail.listening) sampleRate = e.detail.sampleRate; });
        await r.start();
        await new Promise((resolve) => setTimeout(resolve, 12000));
        r.destroy();
        return { stats, sampleRate };
    });
    const steady = live.stats.slice(1);   // the first window includes warm-up
    results.runs.push({
        where: `WASM, Chromium ${version}, live: mic -> AudioWorklet (${live.sampleRate} Hz) -> Worker`,
        whole_ms_per_audio_s_simd: steady.reduce((a, x) => a + x.cpuMsPerAudioSecond * x.audioSeconds, 0) /
            steady.reduce((a, x) => a + x.audioSeconds, 0),
    });
} finally {
    await browser.close();
    fs.rmSync(micClip, { force: true });
}

await server.close();

// --- native: `earshot query` on a WAV of the same audio, start-up (1 s clip) subtracted
const cli = path.join(nativeBuild, 'index-builder/earshot');
if (fs.existsSync(cli)) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-bench-'));
    const long = path.join(tmp, 'long.wav');
    const short = path.join(tmp, 'short.wav');
    execFileSync('sox', [row.path, '-r', '16000', '-c', '1', '-b', '16', long, 'trim', String(startS), String(seconds)]);
    execFileSync('sox', [row.path, '-r', '16000', '-c', '1', '-b', '16', short, 'trim', String(startS), '1']);
    const time = (backend, file) => {
        let best = Infinity;
        for (let i = 0; i < 3; i++) {
            const t0 = process.hrtime.bigint();
            execFileSync(cli, ['query', '--model', path.join(siteDir, 'models/earshot.emod'), '--index', path.join(siteDir, 'index'),
                '--backend', backend, '--jobs', '1', '--stream', file], { stdio: ['ignore', 'pipe', 'pipe'] });
            best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
        }
        return best;
    };
    for (const backend of ['simd', 'xnnpack']) {
        const ms = time(backend, long) - time(backend, short);
        results.runs.push({ where: `native earshot query --stream (${backend}, 1 thread, decode included)`,
            whole_ms_per_audio_s_simd: ms / (audioSeconds - 1) });
    }
    fs.rmSync(tmp, { recursive: true, force: true });
} else {
    console.warn(`bench-web: no native CLI at ${cli} (pass --native-build DIR): native figures skipped`);
}

fs.mkdirSync(path.join(repoRoot, 'out'), { recursive: true });
fs.writeFileSync(path.join(repoRoot, 'out/bench-web.json'), JSON.stringify(results, null, 1));
const f = (x, d = 2) => (x === undefined ? '' : Number(x).toFixed(d));
console.log(`\n${audioSeconds.toFixed(0)} s of "${song.title}" (model ${info.model_file}, ${info.index_songs} songs), CPU: ${results.cpu}\n`);
console.log('| where | front-end ms/s | network ms/s (simd) | search ms/s | whole ms/s (simd) | whole ms/s (scalar) | embed ms simd | GFLOP/s simd | GFLOP/s scalar |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of results.runs) {
    console.log(`| ${r.where} | ${f(r.frontend_ms_per_audio_s)} | ${f(r.network_ms_per_audio_s_simd)} | ${f(r.search_ms_per_audio_s_simd)} | ` +
        `${f(r.whole_ms_per_audio_s_simd)} | ${f(r.whole_ms_per_audio_s_scalar)} | ${f(r.embed_ms_simd, 3)} | ${f(r.gflops_simd)} | ${f(r.gflops_scalar)} |`);
}
console.log('\n| visit | ms to ready (first shard) | ms to whole index | shell B | wasm B | model B | index B |');
console.log('|---|---|---|---|---|---|---|');
for (const v of results.page_load ?? []) {
    const b = v.bytes_from_server;
    console.log(`| ${v.visit} | ${f(v.ms_to_ready, 0)} | ${f(v.ms_to_whole_index, 0)} | ${b.shell} | ${b.wasm} | ${b.model} | ${b.index} |`);
}
