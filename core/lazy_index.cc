#include "core/lazy_index.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace earshot {

Result<std::unique_ptr<LazyIndex>> LazyIndex::create(
    const ModelInfo& model, const std::string& manifest_text, const uint8_t* quantizer,
    size_t quantizer_size, const uint8_t* directory, size_t directory_size,
    const uint8_t* pair_header, size_t pair_header_size, const LazyIndexParams& params) {
    if (params.max_candidates < 1)
        return Status::error("lazy index: max_candidates must be at least 1");
    auto base = std::make_shared<Index>(model);
    if (Status st = base->load_manifest(manifest_text); !st) return st;
    if (base->version() != kIndexVersion2)
        return Status::error(
            "lazy index: the index is format 1; a lazy client needs format 2 with a pair-key "
            "level (earshot build --format 2 --pair-keys 2)");
    Result<std::optional<PairKeyManifest>> entry =
        parse_pair_key_manifest(manifest_text, "manifest.json");
    if (!entry) return entry.status();
    if (!entry->has_value())
        return Status::error(
            "lazy index: the index has no pair-key level (build it with earshot build "
            "--pair-keys 2)");
    if (Status st = base->add_quantizer(quantizer, quantizer_size, base->manifest_quantizer_file());
        !st)
        return st;
    if (Status st =
            base->add_directory(directory, directory_size, base->manifest_directory_file(), false);
        !st)
        return st;
    Result<PairKeyHeader> header =
        read_pair_key_header(**entry, pair_header, pair_header_size, (*entry)->header_file);
    if (!header) return header.status();
    if (header->n_lists != uint32_t(base->n_lists()))
        return Status::error("lazy index: the pair-key level has " +
                             std::to_string(header->n_lists) + " lists where the quantizer has " +
                             std::to_string(base->n_lists()));
    const double ratio = model_query_hop_s(model) / base->hop_s();
    const auto step = uint32_t(std::lround(ratio));
    if (step == 0 || std::fabs(ratio - step) > 1e-6 || header->span % step)
        return Status::error("lazy index: the model's query hop does not divide the pair span");
    std::unique_ptr<LazyIndex> lazy(new LazyIndex(std::move(base), std::move(**entry),
                                                  std::move(header.value()), step, params));
    lazy->query_hop_s_ = model_query_hop_s(model);
    lazy->preload_bytes_ =
        manifest_text.size() + quantizer_size + directory_size + pair_header_size;
    uint64_t songs = 0;
    for (size_t b = 0; b < lazy->base_->n_shards_expected(); ++b) {
        lazy->block_first_song_.push_back(uint32_t(songs));
        songs += lazy->base_->shard_range(b).songs;
    }
    lazy->block_first_song_.push_back(uint32_t(songs));
    // Evenly spaced from the last block back: distinct, and a catalogue's first blocks (often
    // the ones it was tested with) are the last taken.
    const uint64_t n_blocks = lazy->base_->n_shards_expected();
    const uint64_t k = std::min<uint64_t>(params.background_blocks, n_blocks);
    for (uint64_t i = 0; i < k; ++i)
        lazy->background_.push_back(uint32_t(n_blocks - 1 - i * n_blocks / k));
    std::sort(lazy->background_.begin(), lazy->background_.end());
    if (songs != lazy->reader_.header().n_songs)
        return Status::error("lazy index: the pair-key level numbers " +
                             std::to_string(lazy->reader_.header().n_songs) +
                             " songs where the directory holds " + std::to_string(songs));
    return lazy;
}

LazyIndex::LazyIndex(std::shared_ptr<Index> base, PairKeyManifest manifest, PairKeyHeader header,
                     uint32_t query_step, const LazyIndexParams& params)
    : base_(std::move(base)),
      pair_manifest_(std::move(manifest)),
      reader_(std::move(header), params.pair_cache_bytes),
      query_step_(query_step),
      params_(params) {}

std::vector<LazyFetch> LazyIndex::preload_fetches() const {
    std::vector<LazyFetch> out;
    for (uint32_t b : background_) {
        if (pinned_.count(b)) continue;
        const Index::FileRange r = base_->shard_range(b);
        out.push_back({LazyFetch::Kind::kBlock, b, r.file, ByteRange{r.offset, r.bytes}});
    }
    return out;
}

void LazyIndex::clear_cache() {
    reader_ = PairKeyReader(reader_.header(), params_.pair_cache_bytes);
    block_lru_.clear();
    block_at_.clear();
    blocks_cached_ = 0;
    step_ = Step::kIdle;
}

Status LazyIndex::begin_query(const float* embeddings, size_t n) {
    step_ = Step::kIdle;
    candidates_.clear();
    blocks_.clear();
    const Quantizer& q = base_->quantizer();
    const size_t dim = size_t(base_->dim());
    lists_.resize(n);
    for (size_t i = 0; i < n; ++i) lists_[i] = uint32_t(q.assign(embeddings + i * dim));
    Result<std::vector<uint32_t>> keys = reader_.query_keys(lists_.data(), n, query_step_);
    if (!keys) return keys.status();
    keys_ = std::move(keys.value());
    step_ = Step::kPages;
    return Status::ok();
}

Result<std::vector<LazyFetch>> LazyIndex::next_fetches() {
    std::vector<LazyFetch> out;
    if (step_ == Step::kIdle) return Status::error("lazy index: no query begun");
    if (step_ == Step::kPages) {
        out = preload_fetches();
        for (uint32_t page : reader_.missing_pages(keys_))
            out.push_back({LazyFetch::Kind::kPairPage, page, pair_manifest_.directory_file,
                           reader_.header().page_record(page)});
        if (!out.empty()) return out;
        step_ = Step::kUnits;
    }
    if (step_ == Step::kUnits) {
        Result<std::vector<PairKeyUnitFetch>> units = reader_.missing_units(keys_);
        if (!units) return units.status();
        for (const PairKeyUnitFetch& u : units.value())
            out.push_back(
                {LazyFetch::Kind::kPairUnit, u.key, pair_manifest_.postings_file, u.range});
        if (!out.empty()) return out;
        Result<std::vector<PairCandidate>> votes =
            reader_.vote(lists_.data(), lists_.size(), query_step_, params_.max_candidates);
        if (!votes) return votes.status();
        candidates_ = std::move(votes.value());
        blocks_.clear();
        for (const PairCandidate& c : candidates_)
            blocks_.push_back(uint32_t(
                std::upper_bound(block_first_song_.begin(), block_first_song_.end(), c.song) -
                block_first_song_.begin() - 1));
        std::sort(blocks_.begin(), blocks_.end());
        blocks_.erase(std::unique(blocks_.begin(), blocks_.end()), blocks_.end());
        step_ = Step::kBlocks;
    }
    if (step_ == Step::kBlocks) {
        for (uint32_t b : blocks_) {
            if (find_block(b)) continue;
            const Index::FileRange r = base_->shard_range(b);
            out.push_back({LazyFetch::Kind::kBlock, b, r.file, ByteRange{r.offset, r.bytes}});
        }
        if (!out.empty()) return out;
        stats_.block_hits += blocks_.size();
        step_ = Step::kReady;
    }
    return out;
}

Status LazyIndex::provide(const LazyFetch& fetch, const uint8_t* bytes, size_t size) {
    Status st = Status::ok();
    switch (fetch.kind) {
        case LazyFetch::Kind::kPairPage:
            st = reader_.add_page(fetch.id, bytes, size);
            break;
        case LazyFetch::Kind::kPairUnit:
            st = reader_.add_unit(fetch.id, bytes, size);
            break;
        case LazyFetch::Kind::kBlock: {
            if (fetch.id >= base_->n_shards_expected()) {
                st = Status::error("lazy index: block " + std::to_string(fetch.id) +
                                   " is not in the directory");
                break;
            }
            const Index::FileRange r = base_->shard_range(fetch.id);
            if (size != r.bytes || index_file_sha256_hex(bytes, size) != r.sha256) {
                st = Status::error(r.file + " block " + std::to_string(fetch.id) +
                                   ": its size or SHA-256 is not the directory's (changed or "
                                   "truncated in transit)");
                break;
            }
            if (std::binary_search(background_.begin(), background_.end(), fetch.id))
                pinned_[fetch.id].assign(bytes, bytes + size);
            else
                keep_block(fetch.id, std::vector<uint8_t>(bytes, bytes + size));
            break;
        }
    }
    if (!st) {
        ++stats_.rejected;
        return st;
    }
    ++stats_.fetches;
    stats_.bytes += size;
    return Status::ok();
}

const std::vector<uint8_t>* LazyIndex::find_block(uint32_t block) {
    if (const auto pinned = pinned_.find(block); pinned != pinned_.end()) return &pinned->second;
    const auto it = block_at_.find(block);
    if (it == block_at_.end()) return nullptr;
    block_lru_.splice(block_lru_.begin(), block_lru_, it->second);
    return &it->second->second;
}

void LazyIndex::keep_block(uint32_t block, std::vector<uint8_t> bytes) {
    if (const auto old = block_at_.find(block); old != block_at_.end()) {
        blocks_cached_ -= old->second->second.size();
        block_lru_.erase(old->second);
        block_at_.erase(old);
    }
    blocks_cached_ += bytes.size();
    block_lru_.emplace_front(block, std::move(bytes));
    block_at_[block] = block_lru_.begin();
    // Oldest first out, but never a block the current query needs.
    while (blocks_cached_ > params_.block_cache_bytes && !block_lru_.empty() &&
           !std::binary_search(blocks_.begin(), blocks_.end(), block_lru_.back().first)) {
        blocks_cached_ -= block_lru_.back().second.size();
        block_at_.erase(block_lru_.back().first);
        block_lru_.pop_back();
    }
}

Result<std::shared_ptr<const Index>> LazyIndex::query_index() {
    if (step_ != Step::kReady)
        return Status::error("lazy index: the query still needs fetches (next_fetches)");
    auto index = std::make_shared<Index>(*base_);
    if (candidates_.empty()) return std::shared_ptr<const Index>(std::move(index));  // no answer
    std::vector<uint32_t> blocks = background_;  // both ascending: merged, each once
    blocks.insert(blocks.end(), blocks_.begin(), blocks_.end());
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
    for (uint32_t b : blocks) {
        const std::vector<uint8_t>* bytes = find_block(b);
        if (!bytes) return Status::error("lazy index: block " + std::to_string(b) + " is not held");
        if (Status st =
                index->add_shard(bytes->data(), bytes->size(),
                                 base_->shard_range(b).file + " block " + std::to_string(b));
            !st)
            return st;
    }
    return std::shared_ptr<const Index>(std::move(index));
}

Result<MatchResult> LazyIndex::match(const float* embeddings, size_t n, const MatchParams& params) {
    Result<std::shared_ptr<const Index>> index = query_index();
    if (!index) return index.status();
    return Matcher(**index, params).match(embeddings, n, query_hop_s_);
}

}  // namespace earshot
