// Assembles the deployable web app (a folder of static files):
//   web/*                    app shell, library, worker, worklet, service worker, icons
//   wasm/earshot-core.{mjs,wasm}   from the Emscripten build
//   models/earshot.emod      the model the index was built with
//   index/                   manifest.json, quantizer.eq, shard-*.es (format 2: directory.ed,
//                            songs.esb)
//   precache.json            what the service worker caches at install (shell + WASM)
//   build-info.json          model name/hash and index figures (read by tests and docs)
//
//   node scripts/build-site.mjs --wasm build-wasm/wasm --model M.emod --index DIR --out out/site
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const args = process.argv.slice(2);
const arg = (name, fallback) => {
    const i = args.indexOf(name);
    if (i >= 0 && args[i + 1]) return args[i + 1];
    if (fallback === undefined) throw new Error(`build-site: missing ${name}`);
    return fallback;
};
const wasmDir = path.resolve(arg('--wasm'));
const modelPath = path.resolve(arg('--model'));
const indexDir = path.resolve(arg('--index'));
const out = path.resolve(arg('--out', path.join(repo, 'out/site')));

for (const [what, p] of [['WASM glue', path.join(wasmDir, 'earshot-core.mjs')], ['WASM binary', path.join(wasmDir, 'earshot-core.wasm')],
    ['model', modelPath], ['index manifest', path.join(indexDir, 'manifest.json')]]) {
    if (!fs.existsSync(p)) throw new Error(`build-site: ${what} not found at ${p}`);
}

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
fs.cpSync(path.join(repo, 'web'), out, { recursive: true, filter: (src) => path.basename(src) !== 'README.md' });
fs.mkdirSync(path.join(out, 'wasm'));
for (const f of ['earshot-core.mjs', 'earshot-core.wasm']) fs.copyFileSync(path.join(wasmDir, f), path.join(out, 'wasm', f));
fs.mkdirSync(path.join(out, 'models'));
fs.copyFileSync(modelPath, path.join(out, 'models/earshot.emod'));
fs.cpSync(indexDir, path.join(out, 'index'), { recursive: true });

/** every file under dir, relative, sorted */
function list(dir, prefix = '') {
    return fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).flatMap((e) => {
        const rel = prefix ? `${prefix}/${e.name}` : e.name;
        return e.isDirectory() ? list(dir, rel) : [rel];
    }).sort();
}
const shell = list(out).filter((f) => !f.startsWith('index/') && !f.startsWith('models/') && f !== 'sw.js' && !f.endsWith('.d.ts'));
const hash = crypto.createHash('sha256');
for (const f of shell) hash.update(f).update(fs.readFileSync(path.join(out, f)));
fs.writeFileSync(path.join(out, 'precache.json'), JSON.stringify({
    version: hash.digest('hex').slice(0, 16), files: ['./', ...shell],
}, null, 1));

const manifest = JSON.parse(fs.readFileSync(path.join(indexDir, 'manifest.json'), 'utf8'));
const model = fs.readFileSync(modelPath);
const modelHash = model.subarray(model.length - 32).toString('hex');
const indexBytes = list(path.join(out, 'index')).reduce((s, f) => s + fs.statSync(path.join(out, 'index', f)).size, 0);
const info = {
    model_file: path.basename(modelPath), model_hash: modelHash, model_bytes: model.length,
    random_init: /random-init/.test(path.basename(modelPath)),
    index_version: manifest.version, index_songs: manifest.songs,
    index_shards: manifest.version === 2 ? manifest.blocks.count : manifest.shards.length, index_bytes: indexBytes,
    wasm_bytes: fs.statSync(path.join(out, 'wasm/earshot-core.wasm')).size,
    glue_bytes: fs.statSync(path.join(out, 'wasm/earshot-core.mjs')).size,
};
if (manifest.model_hash !== modelHash) {
    throw new Error(`build-site: the index was built with model ${manifest.model_hash.slice(0, 12)}..., not ${path.basename(modelPath)} (${modelHash.slice(0, 12)}...)`);
}
fs.writeFileSync(path.join(out, 'build-info.json'), JSON.stringify(info, null, 1));
console.log(`build-site: ${out} (${shell.length} shell files, ${manifest.songs} songs in ${info.index_shards} ${manifest.version === 2 ? 'blocks' : 'shards'}, ${indexBytes} index bytes)`);
