// Fuzz target: a lazy client (core/lazy_index.h) given a fuzzed directory pages header
// (named by the fixture's manifest, its size and SHA-256 patched in so the bytes reach the
// parser), then a preload and a query run round by round on the fixture's real files: every
// range the client names is read from them when it lies inside the file, and the answer is
// matched when the query completes. Whatever the header claims (page counts, songs, hashes),
// the client must name ranges, refuse bytes or answer, never crash.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/lazy_index.h"
#include "tests/fuzz/index_fuzz_util.h"

namespace {

// Reads each named range from the fixture's files and provides it; false once a range lies
// outside its file (a header that claims more than there is).
bool provide_all(earshot::LazyIndex* lazy, const std::vector<earshot::LazyFetch>& round,
                 const earshot::IndexFiles& files) {
    for (const earshot::LazyFetch& f : round) {
        const auto it = files.files.find(f.file);
        if (it == files.files.end()) return false;
        const std::vector<uint8_t>& whole = it->second;
        if (f.range.offset > whole.size() || f.range.size > whole.size() - f.range.offset)
            return false;
        (void)lazy->provide(f, whole.data() + f.range.offset, size_t(f.range.size));
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace earshot;
    const fuzz::IndexFixture& fixture = fuzz::index_fixture();
    const IndexFiles& files = fixture.lazy;
    const std::vector<uint8_t> bytes = fuzz::with_checksum(data, size);
    static const nlohmann::json manifest = [&] {
        const auto& text = files.files.at("manifest.json");
        return nlohmann::json::parse(text.begin(), text.end());
    }();
    nlohmann::json m = manifest;
    m["directory_pages"]["header"]["bytes"] = bytes.size();
    m["directory_pages"]["header"]["sha256"] = index_file_sha256_hex(bytes.data(), bytes.size());
    const auto& quantizer = files.files.at("quantizer.eq");
    const auto& pair_header = files.files.at("pairs.ekh");
    LazyIndexParams params;
    params.background_blocks = 2;
    params.directory_cache_bytes = 256;  // evictions too
    auto lazy = LazyIndex::create(fixture.model->info(), m.dump(), quantizer.data(),
                                  quantizer.size(), bytes.data(), bytes.size(), pair_header.data(),
                                  pair_header.size(), params);
    if (!lazy) return 0;
    for (int round = 0; round < 4; ++round) {
        const std::vector<LazyFetch> preload = (*lazy)->preload_fetches();
        if (preload.empty() || !provide_all(lazy->get(), preload, files)) break;
    }
    static const std::vector<float> query =
        fuzz::song_embeddings(1, fixture.model->info().embedding_dim);
    const size_t dim = size_t(fixture.model->info().embedding_dim), n = 16;
    if (!(*lazy)->begin_query(query.data() + 4 * dim, n)) std::abort();  // a good query
    for (int round = 0; round < 8; ++round) {
        Result<std::vector<LazyFetch>> next = (*lazy)->next_fetches();
        if (!next) return 0;
        if (next->empty()) {
            (void)(*lazy)->match(query.data() + 4 * dim, n, match_default_params());
            return 0;
        }
        if (!provide_all(lazy->get(), next.value(), files)) return 0;
    }
    return 0;
}
