// Fuzz target: an index shard (songs, postings, codes, absent runs, metadata) added to an index
// holding the fixture quantizer and one good shard; then matched, so the fuzzed postings and
// codes go through both search phases. A rejected shard must leave the index as it was.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "tests/fuzz/index_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace earshot;
    // The index before the fuzzed shard, loaded once and copied for each input.
    static const Index base = [] {
        const fuzz::IndexFixture& fixture = fuzz::index_fixture();
        Index index(fixture.model->info());
        const auto& quantizer = fixture.file("quantizer.eq");
        const auto& good = fixture.file("shard-00000.es");
        if (!index.add_quantizer(quantizer.data(), quantizer.size(), "quantizer.eq") ||
            !index.add_shard(good.data(), good.size(), "shard-00000.es")) {
            std::abort();  // the fixture itself must load
        }
        return index;
    }();
    Index index = base;
    const size_t songs_before = index.n_songs();
    const std::vector<uint8_t> bytes = fuzz::with_checksum(data, size);
    if (!index.add_shard(bytes.data(), bytes.size(), "shard-fuzz.es")) {
        if (index.n_songs() != songs_before) std::abort();  // a rejected shard added songs
    }
    fuzz::match_some(index);
    return 0;
}
