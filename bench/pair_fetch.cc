// What a lazy page fetches from an index's pair-key level (`earshot build --pair-keys`,
// core/pair_key_reader.h) for real query clips, and whether phase 1 by count on those postings
// keeps the right song: per clip length, the median and mean bytes and requests of a cold cache
// (a new reader per clip) and of a warm one (one reader for every clip in turn, under a byte
// budget), and the share of in-catalogue clips whose song and offset (+-1 s) are among the
// candidates. Prints a table (docs/SCALE.md).
//
//   earshot_pair_fetch --model M.emod --index DIR --queries PREFIX --truth truth.tsv
//                      [--candidates 16] [--cache-kb 4096]
//
// PREFIX: the clips' embeddings at the model's query hop (earshot_dump_embeddings --query-hop
// --out PREFIX QUERY_SET/queries); truth.tsv: make-queries' (query, song, start_s, length_s;
// song "-" for clips of songs not in the index). Every byte is read as a page reads it, one
// range per page record and per unit, and checked before use.
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
#include "core/model.h"
#include "core/native/index_folder.h"
#include "core/native/pair_key_folder.h"
#include "core/pair_key_reader.h"

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
    std::string model_path, index_dir, prefix, truth_path;
    size_t n_candidates = 16;
    uint64_t cache_kb = 4096;
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
        else
            return fail("unknown option " + a);
    }
    if (model_path.empty() || index_dir.empty() || prefix.empty() || truth_path.empty())
        return fail(
            "usage: earshot_pair_fetch --model M.emod --index DIR --queries PREFIX "
            "--truth truth.tsv [--candidates 16] [--cache-kb 4096]");

    Result<std::vector<uint8_t>> model_bytes = read_file_bytes(model_path);
    if (!model_bytes) return fail(model_bytes.message());
    auto model = Model::load(model_bytes->data(), model_bytes->size(), model_path);
    if (!model) return fail(model.message());
    const ModelInfo& info = (*model)->info();
    auto index = load_index_folder(index_dir, info);  // the quantizer and the songs' ids
    if (!index) return fail(index.message());
    auto opened = open_pair_key_folder(index_dir);
    if (!opened) return fail(opened.message());
    if (!opened->has_value()) return fail(index_dir + " has no pair-key level (--pair-keys)");
    const PairKeyFolder& folder = **opened;
    const double ratio = model_query_hop_s(info) / (*index)->hop_s();
    const auto query_step = uint32_t(std::lround(ratio));
    if (std::fabs(ratio - query_step) > 1e-6 || query_step == 0)
        return fail("the query hop is not a whole number of index hops");
    std::map<std::string, uint32_t> song_number;
    for (size_t s = 0; s < (*index)->n_songs(); ++s)
        song_number[(*index)->song(s).id] = uint32_t(s);

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
        std::vector<double> cold_bytes, cold_requests, warm_bytes, keys;
        size_t in_catalogue = 0, kept = 0, out_of_catalogue = 0;
    };
    std::map<double, Row> rows;
    PairKeyReader warm(folder.header, cache_kb * 1024);
    const Quantizer& quantizer = (*index)->quantizer();
    for (const Clip& clip : clips) {
        const auto t = truth.find(clip.id);
        if (t == truth.end()) continue;
        if (clip.first_row + clip.n > embeddings.size() / dim)
            return fail(prefix + ".f32 is shorter than its .tsv says");
        std::vector<uint32_t> lists(clip.n);
        for (size_t i = 0; i < clip.n; ++i)
            lists[i] = uint32_t(quantizer.assign(&embeddings[(clip.first_row + i) * dim]));
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

        Row& row = rows[t->second.length_s];
        row.cold_bytes.push_back(double(c->bytes));
        row.cold_requests.push_back(double(c->requests));
        row.warm_bytes.push_back(double(w->bytes));
        row.keys.push_back(double(keys->size()));
        const auto song = song_number.find(t->second.song);
        if (song == song_number.end()) {
            ++row.out_of_catalogue;
            continue;
        }
        ++row.in_catalogue;
        const double tolerance_hops = 1.0 / (*index)->hop_s();
        for (const PairCandidate& cand : candidates.value()) {
            if (cand.song == song->second &&
                std::fabs(double(cand.delta) - t->second.start_s / (*index)->hop_s()) <=
                    tolerance_hops) {
                ++row.kept;
                break;
            }
        }
    }
    std::printf(
        "%s: %u lists, span %u hops, %u keys a page; %llu keys, %llu postings, "
        "%zu songs; warm cache %llu KB\n",
        index_dir.c_str(), folder.header.n_lists, folder.header.span, folder.header.keys_per_page,
        (unsigned long long)folder.header.n_keys, (unsigned long long)folder.header.n_postings,
        (*index)->n_songs(), (unsigned long long)cache_kb);
    std::printf(
        "| length | clips (in / out of catalogue) | keys | KB cold: median; mean | "
        "requests cold: median | KB warm: median; mean | phase 1 keeps the song |\n"
        "|---:|---|---:|---|---:|---|---:|\n");
    for (const auto& [length, r] : rows) {
        std::printf("| %g s | %zu / %zu | %.0f | %.1f; %.1f | %.0f | %.1f; %.1f | %.1f %% |\n",
                    length, r.in_catalogue, r.out_of_catalogue, median(r.keys),
                    median(r.cold_bytes) / 1024, mean(r.cold_bytes) / 1024, median(r.cold_requests),
                    median(r.warm_bytes) / 1024, mean(r.warm_bytes) / 1024,
                    r.in_catalogue ? 100.0 * double(r.kept) / double(r.in_catalogue) : 0.0);
    }
    return 0;
}
