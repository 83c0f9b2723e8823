// Writes a synthetic index folder for a real model, to measure search cost at catalogue sizes
// the demo does not have (docs/PERFORMANCE-web.md, "10 000-song index").
//
//   earshot_make_synthetic_index MODEL.emod N_SONGS EMBEDDINGS_PER_SONG OUT_DIR [--seed S]
//                                [--quantizer FILE.eq] [--pq-m BYTES] [--group WINDOWS]
//                                [--format 1|2] [--list-repeat P]
//   e.g. build/bench/earshot_make_synthetic_index models/earshot-v1.emod 10000 360 out/synth-10k
//
// The folder is a valid index, format v1 (manifest.json, quantizer.eq, shard-NNNNN.es, shards
// <= 8 MB) or, with --format 2, v2 (directory.ed and songs.esb of 64 KB blocks), written by the
// core's IndexBuilder with the model's ModelInfo, so the model hash, dim and hop match and the
// browser Engine / the CLI load it like a real one. Contents are random:
//   - quantizer: random unit coarse centroids, as many as earshot build would make lists for
//     N_SONGS x EMBEDDINGS_PER_SONG embeddings (index_auto_lists), and random PQ codebooks (scaled
//     0.3, residuals are smaller than centroids), as in bench/search_bench.cc; or, with
//     --quantizer, the coarse centroids and codebooks of an existing quantizer.eq built for the
//     same model (e.g. out/site/index/quantizer.eq), so real query embeddings fall into
//     realistic lists;
//   - songs "synthetic-NNNNN", EMBEDDINGS_PER_SONG embeddings each (360 = 3 min at 0.5 s hop),
//     uniformly random list ids and PQ codes (add_song_codes; no training).
// Uniform list sizes are the best case for IVF (real catalogues are skewed;
// earshot_make_scale_index keeps the skew of real codes: docs/SCALE.md). A query of real
// audio matches none of these songs: every probed posting is scanned, the common cost.
// The output folder is created if needed; existing files of the same names are overwritten.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/index.h"
#include "core/index_builder.h"
#include "core/model.h"

namespace {

using earshot::Index;
using earshot::IndexBuilder;
using earshot::Quantizer;

bool read_bytes(const std::string& path, std::vector<uint8_t>* out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

std::vector<float> random_unit_vectors(size_t n, int dim, std::mt19937_64& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> out(n * size_t(dim));
    for (size_t i = 0; i < n; ++i) {
        double norm = 0;
        for (int d = 0; d < dim; ++d) {
            float v = normal(rng);
            out[i * dim + d] = v;
            norm += double(v) * v;
        }
        for (int d = 0; d < dim; ++d) out[i * dim + d] /= float(std::sqrt(norm));
    }
    return out;
}

int fail(const std::string& message) {
    std::fprintf(stderr, "earshot_make_synthetic_index: %s\n", message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> pos;
    uint64_t seed = 1;
    std::string quantizer_path;
    int pq_m = 0;   // 0 = the model's index_pq_m
    int group = 0;  // windows a code covers (random quantizer); 0 = the model's default code's
    // Chance that a window keeps the previous window's list (0: every list drawn anew). A song's
    // neighbouring windows share a list about 69 % of the time at 256 lists (docs/SCALE.md):
    // postings of one list then come in runs, as in a real index.
    double list_repeat = 0.0;
    int format = earshot::kIndexVersion1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--seed" && i + 1 < argc) {
            seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (a == "--quantizer" && i + 1 < argc) {
            quantizer_path = argv[++i];
        } else if (a == "--pq-m" && i + 1 < argc) {
            pq_m = int(std::strtol(argv[++i], nullptr, 10));
        } else if (a == "--group" && i + 1 < argc) {
            group = int(std::strtol(argv[++i], nullptr, 10));
        } else if (a == "--list-repeat" && i + 1 < argc) {
            list_repeat = std::strtod(argv[++i], nullptr);
        } else if (a == "--format" && i + 1 < argc) {
            format = int(std::strtol(argv[++i], nullptr, 10));
        } else {
            pos.push_back(a);
        }
    }
    if (pos.size() != 4) {
        std::fprintf(stderr,
                     "usage: earshot_make_synthetic_index MODEL.emod N_SONGS EMBEDDINGS_PER_SONG "
                     "OUT_DIR [--seed S] [--quantizer FILE.eq] [--pq-m BYTES] [--group WINDOWS] "
                     "(random quantizer) [--list-repeat P] [--format 1|2]\n");
        return 2;
    }
    const std::string model_path = pos[0], out_dir = pos[3];
    const long n_songs = std::strtol(pos[1].c_str(), nullptr, 10);
    const long n_embeddings = std::strtol(pos[2].c_str(), nullptr, 10);
    if (n_songs <= 0 || n_embeddings <= 0)
        return fail("N_SONGS and EMBEDDINGS_PER_SONG must be > 0");

    std::vector<uint8_t> model_bytes;
    if (!read_bytes(model_path, &model_bytes)) return fail("cannot read " + model_path);
    auto model = earshot::Model::load(model_bytes.data(), model_bytes.size(), model_path);
    if (!model) return fail(model.message());
    const earshot::ModelInfo& info = model.value()->info();
    earshot::IndexBuildParams params = earshot::index_build_default_params(info);
    // The model's default code's bytes and windows unless --pq-m or --group name another, as
    // `earshot build`'s code options do. Random codes are plain PQ: no rotation, no unit-length
    // scores.
    if (pq_m < 0 || group < 0) return fail("--pq-m and --group must be positive");
    earshot::apply_code_options(&params, pq_m, -1, -1, group);
    params.opq_rounds = 0;
    params.unit_norm = false;
    params.format_version = format;
    if (format == earshot::kIndexVersion2) params.max_shard_bytes = earshot::kDefaultBlockBytes;
    if (earshot::Status st = earshot::validate_index_build_params(params, info); !st)
        return fail(st.message());

    std::mt19937_64 rng(seed);
    Quantizer q;
    if (!quantizer_path.empty()) {
        std::vector<uint8_t> qbytes;
        if (!read_bytes(quantizer_path, &qbytes)) return fail("cannot read " + quantizer_path);
        Index loaded(info);
        earshot::Status st = loaded.add_quantizer(qbytes.data(), qbytes.size(), quantizer_path);
        if (!st) return fail(st.message());
        q = loaded.quantizer();
    } else {
        const int dim = info.embedding_dim;
        q.dim = dim;
        // as earshot build would:
        q.n_lists = earshot::index_auto_lists(size_t(n_songs) * size_t(n_embeddings));
        q.pq_m = params.pq_m;
        q.sub_dim = dim / params.pq_m;
        q.group = params.code_group;
        q.coarse_centroids = random_unit_vectors(size_t(q.n_lists), dim, rng);
        q.pq_codebooks = random_unit_vectors(
            size_t(q.group) * q.pq_m * earshot::kPqCodebookSize * q.sub_dim / dim, dim, rng);
        for (float& v : q.pq_codebooks) v *= 0.3f;
    }

    earshot::Result<IndexBuilder> builder = IndexBuilder::create(info, params);
    if (!builder) return fail(builder.message());
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) return fail("cannot create " + out_dir + ": " + ec.message());
    // Shards (v1) and blocks (v2, appended to songs.esb) leave as soon as they are full, as in
    // `earshot build`: memory stays bounded whatever N_SONGS (docs/SCALE.md, "Build memory").
    std::set<std::string> started;
    builder->set_shard_sink([&](const std::string& file, std::vector<uint8_t> bytes) {
        const std::string path = (std::filesystem::path(out_dir) / file).string();
        const bool append = !started.insert(file).second;
        std::ofstream out(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
        out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        return out ? earshot::Status::ok() : earshot::Status::error("cannot write " + path);
    });
    earshot::Status st = builder->set_quantizer(q);
    if (!st) return fail(st.message());
    const double hop_s =
        double(info.hop_frames) * info.frontend.hop_length / double(info.frontend.sample_rate_hz);
    std::vector<uint16_t> ids(static_cast<size_t>(n_embeddings));
    // A code per window, or per group of q.group windows.
    std::vector<uint8_t> codes((size_t(n_embeddings) + q.group - 1) / q.group * q.pq_m);
    for (long s = 0; s < n_songs; ++s) {
        for (size_t j = 0; j < ids.size(); ++j) {
            const bool repeat = j > 0 && double(rng() >> 11) * 0x1.0p-53 < list_repeat;
            ids[j] = repeat ? ids[j - 1] : uint16_t(rng() % uint64_t(q.n_lists));
        }
        for (auto& c : codes) c = uint8_t(rng());
        char song_id[32];
        std::snprintf(song_id, sizeof song_id, "synthetic-%05ld", s);
        earshot::SongInfo song;
        song.id = song_id;
        song.title = std::string("Synthetic song ") + std::to_string(s);
        song.album = "Synthetic";
        song.duration_s = double(n_embeddings) * hop_s;
        st = builder->add_song_codes(song, ids.data(), codes.data(), size_t(n_embeddings));
        if (!st) return fail(st.message());
    }
    auto files = builder->finish();
    if (!files) return fail(files.message());
    for (const auto& [name, bytes] : files.value().files) {  // manifest, quantizer, directory
        const std::string path = (std::filesystem::path(out_dir) / name).string();
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        if (!out) return fail("cannot write " + path);
    }
    std::printf("%s: %zu songs, %zu embeddings, %zu files, %.1f MB (%.0f bytes/song), model %s\n",
                out_dir.c_str(), files.value().n_songs, files.value().n_embeddings,
                files.value().n_files, files.value().total_bytes / 1e6,
                files.value().bytes_per_song, info.name.c_str());
    return 0;
}
