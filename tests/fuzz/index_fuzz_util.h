// The fixture model and index files the index fuzz targets load, built once per process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/index.h"
#include "core/matcher.h"
#include "tests/fuzz/fuzz_fixtures.h"
#include "tests/index_test_util.h"

namespace earshot::fuzz {

struct IndexFixture {
    std::shared_ptr<const Model> model = load_model();
    IndexFiles files = build_index(model->info());
    IndexFiles v2 = build_index(model->info(), 0, kIndexVersion2);  // the same, format v2
    IndexFiles lazy = build_index(model->info(), 0, kIndexVersion2, 4);  // and its lazy files
    const std::vector<uint8_t>& file(const std::string& name) const { return files.files.at(name); }
};

inline const IndexFixture& index_fixture() {
    static const IndexFixture* fixture = new IndexFixture();
    return *fixture;
}

// Matches a query taken from a fixture song (so phase 2 has candidates) against whatever
// `index` holds; the result itself is not checked, only that nothing breaks.
inline void match_some(const Index& index) {
    static const std::vector<float> query = song_embeddings(1, index.dim());
    Matcher matcher(index, match_default_params());
    (void)matcher.match(query.data() + size_t(5) * index.dim(), 6, index.hop_s());
}

}  // namespace earshot::fuzz
