// CPU, heap and bytes of a lazy client (core/lazy_index.h) in WASM under node, on real query
// clips against any index built with --pair-keys, e.g. the million-song one of docs/SCALE.md
// (a benchmark: prints, asserts nothing).
//   node e2e/bench-wasm-lazy.mjs --index r128-1000000 --queries QUERY_SET [--length 10]
//       [--limit 100] [--backend simd] [--background 32] [--pair-keys N (the core's default)]
//       [--params JSON (more of the core's lazy parameters, e.g. '{"more_candidates": 0}')]
// QUERY_SET: a make-queries folder (truth.tsv, queries/). Uses the built site's
// earshot-core.mjs/.wasm and model (scripts/demo.sh --build-only); clips are decoded with sox.
// One WASM module for every clip, as one page: the preloaded files (manifest, quantizer,
// directory pages' header, pair header) and the background blocks with their directory pages
// once, then per clip a cleared cache (what a first query fetches) or, with --warm, the cache
// kept across clips. Ranges
// are read from the folder's files (no HTTP: that is e2e/wasm_node.test.mjs's part). The
// recognizer embeds every clip, then the lazy query answers its final window.
// Reports, over the clips: the median and 90th percentile of CPU ms per second of audio
// (process.cpuUsage around the engine calls only: embedding, the lazy steps with their SHA-256
// checks, phase 2 and the decision; file reads and decoding excluded), of bytes read per clip,
// the WASM heap at the end, the preload, and top-1 / false positives against the truth.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { quantile, repoRoot, requireSite, siteDir } from './helpers.mjs';

const args = process.argv.slice(2);
const arg = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const indexDir = path.resolve(repoRoot, arg('--index', 'out/scale/r128-1000000'));
const queryDir = path.resolve(repoRoot, arg('--queries', 'out/eval-public/queries'));
const length = Number(arg('--length', 10));
const limit = Number(arg('--limit', 100));
const backend = arg('--backend', 'simd');
const background = Number(arg('--background', 32));
// LazyIndexParams::pair_key_budget (0: one key a pair); absent: the core's default.
const pairKeys = arg('--pair-keys', null);
const moreParams = JSON.parse(arg('--params', '{}'));
const warm = args.includes('--warm');

requireSite();
const { default: createModule } = await import(path.join(siteDir, 'wasm/earshot-core.mjs'));
const wasmBinary = fs.readFileSync(path.join(siteDir, 'wasm/earshot-core.wasm'));
const modelBytes = fs.readFileSync(path.join(siteDir, 'models/earshot.emod'));
const must = (s) => { if (!s.ok) throw new Error(s.message); };
const cpuMs = (u) => (u.user + u.system) / 1000;

const manifestText = fs.readFileSync(path.join(indexDir, 'manifest.json'), 'utf8');
const manifest = JSON.parse(manifestText);
if (!manifest.pair_keys) throw new Error(`${indexDir} has no pair-key level (earshot build --pair-keys 2)`);
const read = (name) => fs.readFileSync(path.join(indexDir, name));
const fds = new Map();
function readRange(file, offset, bytes) {
    if (!fds.has(file)) fds.set(file, fs.openSync(path.join(indexDir, file), 'r'));
    const out = Buffer.alloc(bytes);
    fs.readSync(fds.get(file), out, 0, bytes, offset);
    return out;
}

const truthRows = fs.readFileSync(path.join(queryDir, 'truth.tsv'), 'utf8').trim().split('\n').slice(1)
    .map((line) => line.split('\t')).filter((r) => Number(r[3]) === length).slice(0, limit);

const module = await createModule({ wasmBinary });
const engine = new module.Engine();
must(engine.loadModel(modelBytes));
const p0 = process.cpuUsage();
must(engine.loadLazy(manifestText, read(manifest.quantizer.file), read(manifest.directory_pages.header.file),
    read(manifest.pair_keys.header.file), JSON.stringify({ background_blocks: background, ...(pairKeys === null ? {} : { pair_key_budget: Number(pairKeys) }), ...moreParams })));
let preloadBytes = JSON.parse(engine.lazyInfo()).preload_bytes;
// The background blocks' directory pages, then the blocks.
for (let round = JSON.parse(engine.lazyFetches(true)).fetches; round.length > 0; round = JSON.parse(engine.lazyFetches(true)).fetches) {
    for (const f of round) {
        must(engine.lazyProvide(f.kind, f.id, readRange(f.file, f.offset, f.bytes)));
        preloadBytes += f.bytes;
    }
}
const preloadCpu = cpuMs(process.cpuUsage(p0));
must(engine.createRecognizer(backend, JSON.stringify({ match_every_embeddings: 1000000 })));
const block = 1024;
const address = engine.inputPointer(block);

const perSecond = [];
const embedPerSecond = [];
const bytesRead = [];
let right = 0;
let inCatalog = 0;
let falsePositives = 0;
let outOfCatalog = 0;
let cacheBytes = 0;
for (const [query, song] of truthRows) {
    const raw = execFileSync('sox', [path.join(queryDir, 'queries', query), '-t', 'f32', '-r', '16000', '-c', '1', '-'], { maxBuffer: 1 << 26 });
    const pcm = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
    let cpu = 0;
    let t = process.cpuUsage();
    engine.reset();
    for (let i = 0; i < pcm.length; i += block) {
        const piece = pcm.subarray(i, Math.min(pcm.length, i + block));
        module.HEAPF32.set(piece, address >> 2);
        must(engine.push(piece.length));
    }
    engine.finish();
    const embedCpu = cpuMs(process.cpuUsage(t));
    cpu += embedCpu;
    if (!warm) engine.lazyClearCache();  // what a first query fetches
    t = process.cpuUsage();
    must(engine.lazyBegin());
    let bytes = 0;
    let answer = null;
    for (;;) {  // the rounds; a second round of candidates when the first names no song
        const next = JSON.parse(engine.lazyFetches(false));
        if (!next.ok) throw new Error(next.message);
        if (next.fetches.length === 0) {
            answer = JSON.parse(engine.lazyResult());
            if ((answer && answer.matched) || !engine.lazyWiden(true)) break;  // a clip: its last look
            continue;
        }
        cpu += cpuMs(process.cpuUsage(t));
        const bodies = next.fetches.map((f) => readRange(f.file, f.offset, f.bytes));
        t = process.cpuUsage();
        next.fetches.forEach((f, i) => { must(engine.lazyProvide(f.kind, f.id, bodies[i])); bytes += f.bytes; });
    }
    cpu += cpuMs(process.cpuUsage(t));
    const seconds = pcm.length / 16000;
    perSecond.push(cpu / seconds);
    embedPerSecond.push(embedCpu / seconds);
    bytesRead.push(bytes);
    cacheBytes = Math.max(cacheBytes, JSON.parse(engine.lazyInfo()).cached_bytes);
    const named = answer && answer.matched ? answer.song : null;
    if (song === '-') { outOfCatalog += 1; falsePositives += named !== null; } else { inCatalog += 1; right += named === song; }
}
const memory = JSON.parse(engine.memoryInfo());
const pct = (a, b) => (b ? (100 * a / b).toFixed(1) : '-');
console.log(`${indexDir}: ${manifest.songs} songs; ${truthRows.length} clips of ${length} s (${inCatalog} in, ${outOfCatalog} out of the catalogue); ${warm ? 'warm' : 'cold'} cache; ${backend}`);
console.log(`preloaded ${(preloadBytes / 1e6).toFixed(2)} MB (${background} background blocks) in ${preloadCpu.toFixed(0)} ms CPU`);
console.log(`CPU ms per second of audio: median ${quantile(perSecond, 0.5).toFixed(2)}, p90 ${quantile(perSecond, 0.9).toFixed(2)} (of it embedding: median ${quantile(embedPerSecond, 0.5).toFixed(2)})`);
console.log(`KB read per clip: median ${(quantile(bytesRead, 0.5) / 1024).toFixed(1)}, p90 ${(quantile(bytesRead, 0.9) / 1024).toFixed(1)}; largest cache ${(cacheBytes / 1e6).toFixed(2)} MB`);
console.log(`WASM heap ${(memory.heap_bytes / 1e6).toFixed(1)} MB (allocated ${(memory.allocated_bytes / 1e6).toFixed(1)} MB, max ${(memory.max_bytes / 1e6).toFixed(0)} MB)`);
console.log(`top-1 ${pct(right, inCatalog)} %, false positives ${pct(falsePositives, outOfCatalog)} %`);
