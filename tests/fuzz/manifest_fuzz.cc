// Fuzz target: manifest.json text, then the fixture quantizer and shards checked against it
// (names, sizes, SHA-256, counts) and matched.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/index_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace earshot;
    const fuzz::IndexFixture& fixture = fuzz::index_fixture();
    Index index(fixture.model->info());
    if (!index.load_manifest(std::string(reinterpret_cast<const char*>(data), size))) return 0;
    const auto& quantizer = fixture.file("quantizer.eq");
    if (!index.add_quantizer(quantizer.data(), quantizer.size(), "quantizer.eq")) return 0;
    for (const auto& [name, bytes] : fixture.files.files) {
        if (name.rfind("shard-", 0) == 0) (void)index.add_shard(bytes.data(), bytes.size(), name);
    }
    fuzz::match_some(index);
    return 0;
}
