// Fuzz target: a format v2 block directory (byte ranges, hashes and song counts of the blocks
// in songs.esb) loaded after a manifest that names it (its size and SHA-256 patched in, so the
// fuzzed bytes reach the parser), then every block it describes cut from the fixture's songs
// file and added, and the index matched.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/fuzz/index_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace earshot;
    const fuzz::IndexFixture& fixture = fuzz::index_fixture();
    const std::vector<uint8_t> bytes = fuzz::with_checksum(data, size);
    static const nlohmann::json manifest = [&] {
        const auto& text = fixture.v2.files.at("manifest.json");
        return nlohmann::json::parse(text.begin(), text.end());
    }();
    nlohmann::json m = manifest;
    m["directory"]["bytes"] = bytes.size();
    m["directory"]["sha256"] = index_file_sha256_hex(bytes.data(), bytes.size());
    Index index(fixture.model->info());
    if (!index.load_manifest(m.dump())) std::abort();  // only the directory entry changed
    const auto& quantizer = fixture.v2.files.at("quantizer.eq");
    if (!index.add_quantizer(quantizer.data(), quantizer.size(), "quantizer.eq")) std::abort();
    // What a page asks first (any bytes: a figure or an error, never a crash); once the
    // directory is accepted, the figure is what it reserved.
    const Result<uint64_t> reserve =
        index.directory_reserve_bytes(bytes.data(), bytes.size(), "directory.ed");
    if (!index.add_directory(bytes.data(), bytes.size(), "directory.ed")) return 0;
    // A stored window takes at least pq_m bytes of songs.esb: that bounds the reservation.
    if (!reserve || reserve.value() > index.manifest_blocks_bytes() / uint64_t(index.pq_m()) *
                                          index.bytes_per_posting())
        std::abort();
    const auto& songs = fixture.v2.files.at("songs.esb");
    for (size_t b = 0; b < index.n_shards_expected(); ++b) {
        const Index::FileRange r = index.shard_range(b);
        // add_directory() promised ranges that tile the songs file the manifest describes.
        if (r.offset + r.bytes > songs.size()) std::abort();
        (void)index.add_shard(songs.data() + r.offset, r.bytes, "block");
    }
    fuzz::match_some(index);
    return 0;
}
