// What a lazy page would fetch and answer from an index's pair-key level (`earshot build
// --pair-keys`, core/pair_key_reader.h) for real query clips: per clip length, the median and
// mean bytes and requests of a cold cache (a new reader per clip) and of a warm one (one reader
// for every clip in turn, under a byte budget); the share of in-catalogue clips whose song and
// offset (+-1 s) phase 1 by count keeps among its candidates; then phase 2 as the matcher runs
// it on the blocks that hold the candidate songs (fetched whole, their bytes counted): top-1 of
// in-catalogue clips and false positives of the others, with the model's thresholds. --full
// also answers every clip from the whole index loaded, for comparison. Last, what the requests
// reveal: how often a server that logs the fetched keys names the clip's song from them alone
// (each key's postings vote once for their song; the most voted song is its guess). Prints a
// table (docs/SCALE.md).
//
//   earshot_pair_fetch --model M.emod --index DIR --queries PREFIX --truth truth.tsv
//                      [--candidates 16] [--cache-kb 4096] [--full 1]
//   earshot_pair_fetch --model M.emod --index DIR --server-log R.jsonl --truth truth.tsv
//
// --server-log plays the server instead, on what the lazy client as shipped asked it for
// (`earshot query --lazy --lazy-log`, clips or --live listens): from each query's logged keys
// and blocks alone, the song it names by the keys' votes (each key once for each song among
// its postings), (1) among all songs, (2) among the songs whose blocks the query fetched (its
// candidates'; blocks that most queries fetch, the background ones, left out), (3) among those
// of the first round that fetched blocks (the first candidates). Per clip length: the share of
// in-catalogue queries each names right, the share whose song's block was fetched (phase 1 kept
// it), and the bytes read (median, from the log's lines).
//
// PREFIX: the clips' embeddings at the model's query hop (earshot_dump_embeddings --query-hop
// --out PREFIX QUERY_SET/queries); truth.tsv: make-queries' (query, song, start_s, length_s;
// song "-" for clips of songs not in the index). Every byte is read as a page reads it, one
// range per page record, unit and block, and checked before use.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/index.h"
#include "core/matcher.h"
#include "core/model.h"
#include "core/native/index_folder.h"
#include "core/native/pair_key_folder.h"
#include "core/pair_key_reader.h"
#include "core/recognizer.h"
#include "nlohmann/json.hpp"

namespace {

using namespace earshot;

struct Clip {
    std::string id;
    size_t n = 0, first_row = 0;
};

struct Truth {
    std::string song;
    double start_s = 0.0, length_s = 0.0;
};

struct Fetched {
    uint64_t bytes = 0, requests = 0;
};

// One query's two rounds of fetches through `reader`.
Result<Fetched> fetch(PairKeyReader* reader, const PairKeyFolder& folder,
                      const std::vector<uint32_t>& keys) {
    Fetched f;
    for (uint32_t page : reader->missing_pages(keys)) {
        const ByteRange r = folder.header.page_record(page);
        Result<std::vector<uint8_t>> bytes = folder.read_directory(r);
        if (!bytes) return bytes.status();
        if (Status s = reader->add_page(page, bytes->data(), bytes->size()); !s) return s;
        f.bytes += r.size;
        ++f.requests;
    }
    Result<std::vector<PairKeyUnitFetch>> units = reader->missing_units(keys);
    if (!units) return units.status();
    for (const PairKeyUnitFetch& u : units.value()) {
        Result<std::vector<uint8_t>> bytes = folder.read_postings(u.range);
        if (!bytes) return bytes.status();
        if (Status s = reader->add_unit(u.key, bytes->data(), bytes->size()); !s) return s;
        f.bytes += u.range.size;
        ++f.requests;
    }
    return f;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

double mean(const std::vector<double>& v) {
    double s = 0.0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / double(v.size());
}

int fail(const std::string& message) {
    std::fprintf(stderr, "earshot_pair_fetch: %s\n", message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path, index_dir, prefix, truth_path, server_log;
    size_t n_candidates = 16;
    uint64_t cache_kb = 4096;
    bool full = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--model")
            model_path = v;
        else if (a == "--index")
            index_dir = v;
        else if (a == "--queries")
            prefix = v;
        else if (a == "--truth")
            truth_path = v;
        else if (a == "--candidates")
            n_candidates = std::strtoull(v.c_str(), nullptr, 10);
        else if (a == "--cache-kb")
            cache_kb = std::strtoull(v.c_str(), nullptr, 10);
        else if (a == "--full")
            full = v != "0";
        else if (a == "--server-log")
            server_log = v;
        else
            return fail("unknown option " + a);
    }
    if (model_path.empty() || index_dir.empty() || (prefix.empty() == server_log.empty()) ||
        truth_path.empty())
        return fail(
            "usage: earshot_pair_fetch --model M.emod --index DIR --queries PREFIX "
            "--truth truth.tsv [--candidates 16] [--cache-kb 4096] [--full 1], or --model "
            "M.emod --index DIR --server-log R.jsonl --truth truth.tsv");

    Result<std::vector<uint8_t>> model_bytes = read_file_bytes(model_path);
    if (!model_bytes) return fail(model_bytes.message());
    auto model = Model::load(model_bytes->data(), model_bytes->size(), model_path);
    if (!model) return fail(model.message());
    const ModelInfo& info = (*model)->info();
    // What a lazy page holds before its first query: the manifest, the quantizer, the block
    // directory (its lists not reserved) and the pair level's header.
    Index base(info);
    uint64_t preload_bytes = 0;
    {
        const std::string dir = index_dir + "/";
        Result<std::vector<uint8_t>> manifest = read_file_bytes(dir + "manifest.json");
        if (!manifest) return fail(manifest.message());
        preload_bytes += manifest->size();
        if (Status st = base.load_manifest(std::string(manifest->begin(), manifest->end())); !st)
            return fail(st.message());
        Result<std::vector<uint8_t>> q = read_file_bytes(dir + base.manifest_quantizer_file());
        if (!q) return fail(q.message());
        preload_bytes += q->size();
        if (Status st = base.add_quantizer(q->data(), q->size(), "quantizer"); !st)
            return fail(st.message());
        Result<std::vector<uint8_t>> d = read_file_bytes(dir + base.manifest_directory_file());
        if (!d) return fail(d.message());
        preload_bytes += d->size();
        if (Status st = base.add_directory(d->data(), d->size(), "directory", false); !st)
            return fail(st.message());
    }
    auto opened = open_pair_key_folder(index_dir);
    if (!opened) return fail(opened.message());
    if (!opened->has_value()) return fail(index_dir + " has no pair-key level (--pair-keys)");
    const PairKeyFolder& folder = **opened;
    preload_bytes += folder.header_bytes;
    const double ratio = model_query_hop_s(info) / base.hop_s();
    const auto query_step = uint32_t(std::lround(ratio));
    if (std::fabs(ratio - query_step) > 1e-6 || query_step == 0)
        return fail("the query hop is not a whole number of index hops");
    // Songs before each block (the directory's block_songs).
    std::vector<uint32_t> block_first{0};
    for (size_t b = 0; b < base.n_shards_expected(); ++b)
        block_first.push_back(block_first.back() + uint32_t(base.shard_range(b).songs));
    std::shared_ptr<Index> whole;
    if (full) {
        auto loaded = load_index_folder(index_dir, info);
        if (!loaded) return fail(loaded.message());
        whole = *loaded;
    }
    const MatchParams match_params = recognizer_default_params(info, base).match;
    const double query_hop_s = model_query_hop_s(info);

    std::map<std::string, Truth> truth;
    {
        std::ifstream in(truth_path);
        if (!in) return fail("cannot read " + truth_path);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::istringstream row(line);
            std::string query, song, start, length;
            std::getline(row, query, '\t');
            std::getline(row, song, '\t');
            std::getline(row, start, '\t');
            std::getline(row, length, '\t');
            truth[query] = {song, std::atof(start.c_str()), std::atof(length.c_str())};
        }
    }
    // The server's two guesses from a query's fetched keys (their postings, which the
    // server holds) and blocks, as global song numbers (UINT32_MAX: none): the most voted song,
    // and the most voted among the songs of `blocks` (sorted). Each posting votes for its song,
    // or (once_per_key) each key once for each song among its postings.
    struct Guesses {
        uint32_t by_keys = UINT32_MAX, by_keys_among_blocks = UINT32_MAX;
    };
    const auto guess = [&](PairKeyReader* reader, const std::vector<uint32_t>& keys,
                           const std::vector<uint32_t>& blocks,
                           bool once_per_key) -> Result<Guesses> {
        std::map<uint32_t, size_t> votes;
        std::vector<uint32_t> songs;
        for (uint32_t key : keys) {
            Result<PairPostingSpan> held = reader->postings(key);
            if (!held) return held.status();
            songs.clear();
            for (size_t k = 0; k < held->size; ++k) songs.push_back(held->data[k].song);
            if (once_per_key) {
                std::sort(songs.begin(), songs.end());
                songs.erase(std::unique(songs.begin(), songs.end()), songs.end());
            }
            for (uint32_t song : songs) ++votes[song];
        }
        Guesses g;
        size_t most = 0, most_among = 0;
        for (const auto& [song, n] : votes) {
            if (n > most) {
                most = n;
                g.by_keys = song;
            }
            if (n <= most_among || song >= block_first.back()) continue;
            const auto b = uint32_t(std::upper_bound(block_first.begin(), block_first.end(), song) -
                                    block_first.begin() - 1);
            if (!std::binary_search(blocks.begin(), blocks.end(), b)) continue;
            most_among = n;
            g.by_keys_among_blocks = song;
        }
        return g;
    };
    // The ids of a block's songs: its metadata, as the server would read it (each block read
    // once).
    std::map<size_t, std::vector<std::string>> ids_read;
    const auto block_ids = [&](size_t b) -> Result<std::vector<std::string>> {
        if (const auto it = ids_read.find(b); it != ids_read.end()) return it->second;
        const Index::FileRange r = base.shard_range(b);
        Result<std::vector<uint8_t>> bytes =
            read_file_range(index_dir + "/" + r.file, ByteRange{r.offset, r.bytes});
        if (!bytes) return bytes.status();
        Index one = base;
        if (Status st = one.add_shard(bytes->data(), bytes->size(), "block"); !st) return st;
        std::vector<std::string>& ids = ids_read[b];
        for (size_t k = 0; k < one.n_songs(); ++k) ids.push_back(one.song(k).id);
        return ids;
    };
    // A global song number's id ("" for none).
    const auto song_id = [&](uint32_t song) -> Result<std::string> {
        if (song >= block_first.back()) return std::string();
        const size_t b = size_t(std::upper_bound(block_first.begin(), block_first.end(), song) -
                                block_first.begin() - 1);
        Result<std::vector<std::string>> ids = block_ids(b);
        if (!ids) return ids.status();
        return ids->at(song - block_first[b]);
    };
    if (!server_log.empty()) {
        std::vector<nlohmann::json> lines;
        {
            std::ifstream in(server_log);
            if (!in) return fail("cannot read " + server_log);
            std::string text;
            while (std::getline(in, text)) {
                nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
                if (line.is_discarded()) return fail(server_log + ": a line is not JSON");
                if (!line.contains("lazy") || !line["lazy"].contains("log"))
                    return fail(server_log +
                                ": a line has no lazy log (earshot query --lazy "
                                "--lazy-log)");
                lines.push_back(std::move(line));
            }
        }
        // The background blocks: those more than half the queries fetch.
        std::map<uint32_t, size_t> block_queries;
        for (const nlohmann::json& line : lines) {
            std::vector<uint32_t> blocks;
            for (const nlohmann::json& r : line["lazy"]["log"])
                if (r.at(1) == "block") blocks.push_back(r.at(2).get<uint32_t>());
            std::sort(blocks.begin(), blocks.end());
            blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
            for (uint32_t b : blocks) ++block_queries[b];
        }
        struct AttackRow {
            size_t in_catalogue = 0, fetched_song = 0, by_keys = 0, among_blocks = 0,
                   among_first_blocks = 0;
            std::vector<double> bytes;
        };
        std::map<double, AttackRow> attack;
        for (const nlohmann::json& line : lines) {
            const auto t = truth.find(line.at("query").get<std::string>());
            if (t == truth.end()) continue;
            AttackRow& row = attack[t->second.length_s];
            row.bytes.push_back(line["lazy"].at("bytes").get<double>());
            if (t->second.song == "-") continue;
            // The keys, the candidates' blocks, and those of the first round that fetched any.
            std::vector<uint32_t> keys, blocks, first_blocks;
            uint64_t first_round = 0;
            for (const nlohmann::json& r : line["lazy"]["log"]) {
                const auto id = r.at(2).get<uint32_t>();
                if (r.at(1) == "unit") keys.push_back(id);
                if (r.at(1) != "block" || 2 * block_queries[id] > lines.size()) continue;
                blocks.push_back(id);
                if (first_round == 0) first_round = r.at(0).get<uint64_t>();
                if (r.at(0).get<uint64_t>() == first_round) first_blocks.push_back(id);
            }
            std::sort(keys.begin(), keys.end());
            keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
            std::sort(blocks.begin(), blocks.end());
            std::sort(first_blocks.begin(), first_blocks.end());
            for (uint32_t b : blocks) {
                Result<std::vector<std::string>> ids = block_ids(b);
                if (!ids) return fail(ids.message());
                if (std::find(ids->begin(), ids->end(), t->second.song) != ids->end()) {
                    ++row.fetched_song;
                    break;
                }
            }
            PairKeyReader reader(folder.header, uint64_t(1) << 40);
            if (Result<Fetched> f = fetch(&reader, folder, keys); !f) return fail(f.message());
            Result<Guesses> g = guess(&reader, keys, blocks, true);
            if (!g) return fail(g.message());
            Result<Guesses> first = guess(&reader, keys, first_blocks, true);
            if (!first) return fail(first.message());
            ++row.in_catalogue;
            for (auto [song, hits] :
                 {std::pair{g->by_keys, &row.by_keys},
                  std::pair{g->by_keys_among_blocks, &row.among_blocks},
                  std::pair{first->by_keys_among_blocks, &row.among_first_blocks}}) {
                Result<std::string> id = song_id(song);
                if (!id) return fail(id.message());
                *hits += *id == t->second.song;
            }
        }
        std::printf(
            "%s: %zu queries logged, %zu background blocks\n"
            "| length | in-catalogue queries | KB read (median) | the song's block fetched | the "
            "keys name the song | the keys among the fetched blocks' songs | among the first "
            "round's |\n|---:|---:|---:|---:|---:|---:|---:|\n",
            server_log.c_str(), lines.size(),
            size_t(std::count_if(block_queries.begin(), block_queries.end(),
                                 [&](const auto& b) { return 2 * b.second > lines.size(); })));
        const auto pct = [](size_t a, size_t b) { return b ? 100.0 * double(a) / double(b) : 0.0; };
        for (const auto& [length, r] : attack)
            std::printf("| %g s | %zu | %.0f | %.1f %% | %.1f %% | %.1f %% | %.1f %% |\n", length,
                        r.in_catalogue, median(r.bytes) / 1024, pct(r.fetched_song, r.in_catalogue),
                        pct(r.by_keys, r.in_catalogue), pct(r.among_blocks, r.in_catalogue),
                        pct(r.among_first_blocks, r.in_catalogue));
        return 0;
    }

    std::vector<Clip> clips;
    {
        std::ifstream in(prefix + ".tsv");
        if (!in) return fail("cannot read " + prefix + ".tsv");
        Clip c;
        while (in >> c.id >> c.n >> c.first_row) clips.push_back(c);
    }
    const size_t dim = size_t(info.embedding_dim);
    std::vector<float> embeddings;
    {
        std::ifstream in(prefix + ".f32", std::ios::binary | std::ios::ate);
        if (!in) return fail("cannot read " + prefix + ".f32");
        embeddings.resize(size_t(in.tellg()) / sizeof(float));
        in.seekg(0);
        in.read(reinterpret_cast<char*>(embeddings.data()),
                std::streamsize(embeddings.size() * sizeof(float)));
    }

    struct Row {
        std::vector<double> cold_bytes, cold_requests, warm_bytes, keys, block_bytes;
        size_t in_catalogue = 0, out_of_catalogue = 0, kept = 0;
        size_t attacked = 0;  // in-catalogue clips whose song the fetched keys alone name
        size_t lazy_right = 0, lazy_false = 0, full_right = 0, full_false = 0;
    };
    std::map<double, Row> rows;
    PairKeyReader warm(folder.header, cache_kb * 1024);
    const Quantizer& quantizer = base.quantizer();
    for (const Clip& clip : clips) {
        const auto t = truth.find(clip.id);
        if (t == truth.end() || clip.n == 0) continue;
        if (clip.first_row + clip.n > embeddings.size() / dim)
            return fail(prefix + ".f32 is shorter than its .tsv says");
        const float* query = &embeddings[clip.first_row * dim];
        std::vector<uint32_t> lists(clip.n);
        for (size_t i = 0; i < clip.n; ++i) lists[i] = uint32_t(quantizer.assign(query + i * dim));
        Result<std::vector<uint32_t>> keys = pair_query_keys(
            folder.header.n_lists, folder.header.span, lists.data(), lists.size(), query_step);
        if (!keys) return fail(keys.message());
        PairKeyReader cold(folder.header, uint64_t(1) << 40);
        Result<Fetched> c = fetch(&cold, folder, *keys);
        if (!c) return fail(clip.id + ": " + c.message());
        Result<Fetched> w = fetch(&warm, folder, *keys);
        if (!w) return fail(clip.id + ": " + w.message());
        Result<std::vector<PairCandidate>> candidates =
            cold.vote(lists.data(), lists.size(), query_step, n_candidates);
        if (!candidates) return fail(clip.id + ": " + candidates.message());

        // Phase 2: the blocks of the candidate songs, added to a copy of the preloaded index.
        std::vector<size_t> blocks;
        for (const PairCandidate& cand : candidates.value())
            blocks.push_back(
                size_t(std::upper_bound(block_first.begin(), block_first.end(), cand.song) -
                       block_first.begin() - 1));
        std::sort(blocks.begin(), blocks.end());
        blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
        Index lazy = base;
        uint64_t block_bytes = 0;
        std::map<uint32_t, size_t> loaded_song;  // global song number -> song in `lazy`
        for (size_t b : blocks) {
            const Index::FileRange r = base.shard_range(b);
            Result<std::vector<uint8_t>> bytes =
                read_file_range(index_dir + "/" + r.file, ByteRange{r.offset, r.bytes});
            if (!bytes) return fail(bytes.message());
            const size_t before = lazy.n_songs();
            if (Status st = lazy.add_shard(bytes->data(), bytes->size(), "block"); !st)
                return fail(clip.id + ": " + st.message());
            for (size_t k = 0; k < lazy.n_songs() - before; ++k)
                loaded_song[block_first[b] + uint32_t(k)] = before + k;
            block_bytes += r.bytes;
        }
        std::string answer;
        if (!blocks.empty()) {
            Matcher matcher(lazy, match_params);
            Result<MatchResult> m = matcher.match(query, clip.n, query_hop_s);
            if (!m) return fail(clip.id + ": " + m.message());
            if (m->matched) answer = m->best.id;
        }
        std::string full_answer;
        if (whole) {
            Matcher matcher(*whole, match_params);
            Result<MatchResult> m = matcher.match(query, clip.n, query_hop_s);
            if (!m) return fail(clip.id + ": " + m.message());
            if (m->matched) full_answer = m->best.id;
        }

        Row& row = rows[t->second.length_s];
        row.cold_bytes.push_back(double(c->bytes));
        row.cold_requests.push_back(double(c->requests + blocks.size()));
        row.warm_bytes.push_back(double(w->bytes));
        row.keys.push_back(double(keys->size()));
        row.block_bytes.push_back(double(block_bytes));
        if (t->second.song == "-") {
            ++row.out_of_catalogue;
            row.lazy_false += !answer.empty();
            row.full_false += !full_answer.empty();
            continue;
        }
        ++row.in_catalogue;
        // What a server that logs the fetched keys learns: each key's postings (public) vote
        // once for their song, the query's timing unknown; the most voted song is its guess.
        {
            Result<Guesses> g = guess(&cold, keys.value(), {}, false);
            if (!g) return fail(clip.id + ": " + g.message());
            Result<std::string> id = song_id(g->by_keys);
            if (!id) return fail(id.message());
            row.attacked += *id == t->second.song;
        }
        row.lazy_right += answer == t->second.song;
        row.full_right += full_answer == t->second.song;
        const double tolerance_hops = 1.0 / base.hop_s();
        for (const PairCandidate& cand : candidates.value()) {
            if (lazy.song(loaded_song.at(cand.song)).id == t->second.song &&
                std::fabs(double(cand.delta) - t->second.start_s / base.hop_s()) <=
                    tolerance_hops) {
                ++row.kept;
                break;
            }
        }
    }
    std::printf(
        "%s: %u lists, span %u hops, %u keys a page; %llu keys, %llu postings, "
        "%zu blocks; preloaded %.2f MB; warm cache %llu KB\n",
        index_dir.c_str(), folder.header.n_lists, folder.header.span, folder.header.keys_per_page,
        (unsigned long long)folder.header.n_keys, (unsigned long long)folder.header.n_postings,
        base.n_shards_expected(), double(preload_bytes) / 1e6, (unsigned long long)cache_kb);
    std::printf(
        "| length | clips in / out | keys | pair level KB cold: median; mean | pair "
        "level KB warm: median | phase 1 keeps | blocks KB: median | requests | lazy: "
        "top-1, false positives | whole index: top-1, false positives | keys name the song |\n"
        "|---:|---|---:|---|---:|---:|---:|---:|---|---|---:|\n");
    const auto pct = [](size_t a, size_t b) { return b ? 100.0 * double(a) / double(b) : 0.0; };
    for (const auto& [length, r] : rows) {
        std::printf(
            "| %g s | %zu / %zu | %.0f | %.1f; %.1f | %.1f | %.1f %% | %.0f | %.0f | "
            "%.1f %%, %.1f %% | ",
            length, r.in_catalogue, r.out_of_catalogue, median(r.keys), median(r.cold_bytes) / 1024,
            mean(r.cold_bytes) / 1024, median(r.warm_bytes) / 1024, pct(r.kept, r.in_catalogue),
            median(r.block_bytes) / 1024, median(r.cold_requests),
            pct(r.lazy_right, r.in_catalogue), pct(r.lazy_false, r.out_of_catalogue));
        if (whole)
            std::printf("%.1f %%, %.1f %% | ", pct(r.full_right, r.in_catalogue),
                        pct(r.full_false, r.out_of_catalogue));
        else
            std::printf("(--full 1) | ");
        std::printf("%.1f %% |\n", pct(r.attacked, r.in_catalogue));
    }
    return 0;
}
