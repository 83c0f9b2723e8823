// Fuzz target: a quantizer file (coarse centroids, PQ codebooks, metadata) loaded into an index
// for the fixture model, then searched.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/index_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace earshot;
    const fuzz::IndexFixture& fixture = fuzz::index_fixture();
    const std::vector<uint8_t> bytes = fuzz::with_checksum(data, size);
    Index index(fixture.model->info());
    if (!index.add_quantizer(bytes.data(), bytes.size(), "quantizer.eq")) return 0;
    fuzz::match_some(index);
    return 0;
}
