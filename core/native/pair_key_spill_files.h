// A PairKeySpill (core/pair_keys.h) on disk: one temporary file per bucket of keys, so a build
// of the pair-key level holds only its buffers and one bucket in memory (a million songs: about
// 4.9 GB of records on disk). The folder is made under `parent` (the system's temporary folder,
// $TMPDIR, when empty) and removed with everything in it when the spill is destroyed. Native
// only; `earshot build --pair-keys` and the scale generator use it.
//
//   auto spill = TempFilePairKeySpill::create("");
//   auto builder = PairKeyBuilder::create(n_lists, span, 512, *spill);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/pair_keys.h"
#include "core/status.h"

namespace earshot {

class TempFilePairKeySpill : public PairKeySpill {
public:
    static Result<std::shared_ptr<TempFilePairKeySpill>> create(const std::string& parent);
    ~TempFilePairKeySpill() override;
    TempFilePairKeySpill(const TempFilePairKeySpill&) = delete;
    TempFilePairKeySpill& operator=(const TempFilePairKeySpill&) = delete;

    Status append(uint32_t bucket, const uint64_t* records, size_t n) override;
    Result<std::vector<uint64_t>> take(uint32_t bucket) override;

    const std::string& folder() const { return folder_; }
    uint64_t bytes_written() const { return bytes_written_; }

private:
    explicit TempFilePairKeySpill(std::string folder) : folder_(std::move(folder)) {}
    std::string bucket_path(uint32_t bucket) const;

    std::string folder_;
    uint64_t bytes_written_ = 0;
};

}  // namespace earshot
