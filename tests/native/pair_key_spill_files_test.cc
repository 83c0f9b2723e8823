// The pair-key build's spill on disk (core/native/pair_key_spill_files.h): records read back in
// the order appended, a bucket released once taken, the folder removed with the spill, and a
// bucketed build through it equal to the in-memory layout.
#include "core/native/pair_key_spill_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/pair_key_layout.h"

namespace {

namespace fs = std::filesystem;
using namespace earshot;

class TempFilePairKeySpillTest : public ::testing::Test {
protected:
    void SetUp() override {
        parent_ = fs::temp_directory_path() /
                  ("earshot-spill-test-" + std::to_string(std::random_device()()));
        fs::create_directories(parent_);
    }
    void TearDown() override { fs::remove_all(parent_); }
    fs::path parent_;
};

TEST_F(TempFilePairKeySpillTest, ReadsBackWhatWasAppendedAndCleansUp) {
    std::string folder;
    {
        std::shared_ptr<TempFilePairKeySpill> spill =
            TempFilePairKeySpill::create(parent_.string()).value();
        folder = spill->folder();
        EXPECT_EQ(fs::path(folder).parent_path(), parent_);
        const uint64_t a[3] = {5, 1, uint64_t(1) << 63}, b[2] = {7, 7};
        ASSERT_TRUE(spill->append(4, a, 3).is_ok());
        ASSERT_TRUE(spill->append(0, b, 2).is_ok());
        ASSERT_TRUE(spill->append(4, b, 1).is_ok());
        EXPECT_EQ(spill->bytes_written(), 6u * 8);
        EXPECT_EQ(spill->take(4).value(), (std::vector<uint64_t>{5, 1, uint64_t(1) << 63, 7}));
        EXPECT_TRUE(spill->take(4).value().empty());  // released
        EXPECT_TRUE(spill->take(9).value().empty());  // never appended
        EXPECT_EQ(spill->take(0).value(), (std::vector<uint64_t>{7, 7}));
        ASSERT_TRUE(spill->append(2, a, 1).is_ok());  // left behind: the destructor removes it
        EXPECT_TRUE(fs::exists(folder));
    }
    EXPECT_FALSE(fs::exists(folder));

    // A spill in a folder that cannot be made is a clear error.
    const fs::path file = parent_ / "a-file";
    { std::ofstream(file.string()) << "x"; }
    Result<std::shared_ptr<TempFilePairKeySpill>> bad = TempFilePairKeySpill::create(file.string());
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.message().find("temporary folder"), std::string::npos) << bad.message();
}

TEST_F(TempFilePairKeySpillTest, ABuildThroughItEqualsTheInMemoryLayout) {
    std::mt19937 rng(11);
    PairKeyIndex in_memory = PairKeyIndex::create(32, 4).value();
    PairKeyBuilder bucketed =
        PairKeyBuilder::create(32, 4, 16, TempFilePairKeySpill::create(parent_.string()).value(), 9,
                               3)
            .value();
    for (int s = 0; s < 60; ++s) {
        std::vector<uint32_t> lists(20 + rng() % 200);
        for (auto& l : lists) l = rng() % 17 == 0 ? kPairNoList : rng() % 32;
        ASSERT_TRUE(in_memory.add_song(lists.data(), lists.size()).is_ok());
        ASSERT_TRUE(bucketed.add_song(lists.data(), lists.size()).is_ok());
    }
    ASSERT_TRUE(in_memory.finish().is_ok());
    const PairKeyFiles want = write_pair_key_files(in_memory, 16).value();
    std::vector<uint8_t> postings;
    PairKeyLayoutWriter writer =
        PairKeyLayoutWriter::create(32, 4, 16, [&](const uint8_t* d, size_t n) {
            postings.insert(postings.end(), d, d + n);
            return Status::ok();
        }).value();
    ASSERT_TRUE(bucketed.finish(&writer).is_ok());
    Result<PairKeyFiles> got = writer.finish(bucketed.n_songs());
    ASSERT_TRUE(got.is_ok()) << got.message();
    EXPECT_EQ(got->header, want.header);
    EXPECT_EQ(got->directory, want.directory);
    EXPECT_EQ(postings, want.postings);
    EXPECT_LT(bucketed.largest_bucket(), in_memory.n_postings() / 4);  // one bucket at a time
}

}  // namespace
