// CPU cost of the whole streaming recognizer (front-end + network + search) in WASM under node,
// with any index folder, e.g. a 10 000-song synthetic one (a benchmark: prints, asserts nothing).
//   build/bench/earshot_make_synthetic_index models/earshot-v1.emod 10000 720 out/synth-10k
//   node e2e/bench-wasm-index.mjs [--index out/synth-10k] [--seconds 60] [--runs 3] [--backend simd]
//       [--nprobe N]
// Uses the built site's earshot-core.mjs/.wasm and model (scripts/demo.sh --build-only) and the
// first demo song (sox -> 16 kHz mono float). Each run: a fresh WASM module, model and whole
// index loaded through the Engine bindings (load time = loadManifest + addQuantizer + addShard,
// file reads excluded), default recognizer params (as the app: matcher re-run every embedding on
// the 10 s window), audio pushed in 1024-sample blocks (what the AudioWorklet delivers). A format
// v2 index is loaded as the page loads it: quantizer, directory, then block by block.
// Reports per run and the median of the runs: CPU ms (process.cpuUsage, the whole node process)
// and wall ms per second of audio, index load time, WASM heap size and node RSS; also how many
// matcher runs reported a match (a synthetic song matching real audio is a false positive).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { benchAudio, repoRoot, requireSite, siteDir } from './helpers.mjs';

const args = process.argv.slice(2);
const arg = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const indexDir = path.resolve(repoRoot, arg('--index', 'out/synth-10k'));
const seconds = Number(arg('--seconds', 60));
const runs = Number(arg('--runs', 3));
const backend = arg('--backend', 'simd');
const nprobe = args.includes('--nprobe') ? Number(arg('--nprobe')) : undefined;  // default: the engine's

requireSite();
const { pcm, audioSeconds, song } = benchAudio(seconds);

const { default: createModule } = await import(path.join(siteDir, 'wasm/earshot-core.mjs'));
const wasmBinary = fs.readFileSync(path.join(siteDir, 'wasm/earshot-core.wasm'));
const modelBytes = fs.readFileSync(path.join(siteDir, 'models/earshot.emod'));
const manifestText = fs.readFileSync(path.join(indexDir, 'manifest.json'), 'utf8');
const manifest = JSON.parse(manifestText);
const v2 = manifest.version === 2;
const indexFiles = [manifest.quantizer.file, ...(v2 ? [manifest.directory.file, manifest.blocks.file] : manifest.shards.map((s) => s.file))]
    .map((name) => ({ name, bytes: fs.readFileSync(path.join(indexDir, name)) }));
const indexBytes = indexFiles.reduce((n, f) => n + f.bytes.length, 0);

const cpuMs = (u) => (u.user + u.system) / 1000;
const must = (s) => { if (!s.ok) throw new Error(s.message); };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function once() {
    const module = await createModule({ wasmBinary });
    const engine = new module.Engine();
    must(engine.loadModel(modelBytes));
    const load0 = { cpu: process.cpuUsage(), wall: performance.now() };
    must(engine.loadManifest(manifestText));
    if (v2) {
        const [quantizer, directory, blocks] = indexFiles;
        must(engine.addQuantizer(quantizer.bytes, quantizer.name));
        must(engine.addDirectory(directory.bytes, directory.name));
        for (const r of JSON.parse(engine.shardRanges())) {
            must(engine.addShard(blocks.bytes.subarray(r.offset, r.offset + r.bytes), `${r.file} at ${r.offset}`));
        }
    } else {
        for (const f of indexFiles) {
            must(f.name === manifest.quantizer.file ? engine.addQuantizer(f.bytes, f.name) : engine.addShard(f.bytes, f.name));
        }
    }
    const load = { cpu_ms: cpuMs(process.cpuUsage(load0.cpu)), wall_ms: performance.now() - load0.wall };
    const index = JSON.parse(engine.indexInfo());
    must(engine.createRecognizer(backend, JSON.stringify({ nprobe })));
    const block = 1024;
    const address = engine.inputPointer(block);
    let results = 0, matched = 0;
    const t0 = { cpu: process.cpuUsage(), wall: performance.now() };
    for (let i = 0; i < pcm.length; i += block) {
        const piece = pcm.subarray(i, Math.min(pcm.length, i + block));
        module.HEAPF32.set(piece, address >> 2);
        must(engine.push(piece.length));
        const polled = engine.poll();
        if (polled) { results++; if (JSON.parse(polled).matched) matched++; }
    }
    const cpu = cpuMs(process.cpuUsage(t0.cpu));
    const wall = performance.now() - t0.wall;
    const final = JSON.parse(engine.finish());
    const out = {
        songs: index.songs, embeddings: index.embeddings,
        load_cpu_ms: load.cpu_ms, load_wall_ms: load.wall_ms,
        cpu_ms_per_audio_s: cpu / audioSeconds, wall_ms_per_audio_s: wall / audioSeconds,
        matcher_runs: results, matched_runs: matched,
        final_matched: final?.matched ?? false, final_title: final?.best?.title ?? null,
        wasm_heap_mb: module.HEAPF32.buffer.byteLength / 2 ** 20,
        rss_mb: process.memoryUsage().rss / 2 ** 20,
    };
    engine.delete();
    return out;
}

console.log(`index ${path.relative(repoRoot, indexDir)}: ${v2 ? `format 2, ${manifest.blocks.count} blocks` : `${indexFiles.length - 1} shards`}, ${(indexBytes / 1e6).toFixed(1)} MB; ` +
    `${audioSeconds} s of ${song.title}; backend ${backend}; node ${process.version}; ${os.cpus()[0]?.model}`);
const all = [];
for (let r = 0; r < runs; r++) {
    const m = await once();
    all.push(m);
    console.log(`run ${r + 1}: ${JSON.stringify(m, (k, v) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toFixed(2)) : v))}`);
}
const keys = ['load_cpu_ms', 'load_wall_ms', 'cpu_ms_per_audio_s', 'wall_ms_per_audio_s', 'wasm_heap_mb', 'rss_mb'];
const med = Object.fromEntries(keys.map((k) => [k, Number(median(all.map((m) => m[k])).toFixed(2))]));
console.log(`median of ${runs}: ${JSON.stringify({ songs: all[0].songs, embeddings: all[0].embeddings, ...med })}`);
