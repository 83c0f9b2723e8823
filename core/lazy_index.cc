#include "core/lazy_index.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

namespace earshot {

bool lazy_look_due(size_t n_window, uint64_t n_embeddings, size_t max_query_embeddings,
                   const std::vector<size_t>& early_looks, int64_t last_look, bool final) {
    if (n_window == 0) return false;
    if (final) return int64_t(n_embeddings) != last_look;
    const int64_t step = int64_t((max_query_embeddings + 1) / 2);
    // The window the last look saw (none before the first); the next look comes at the first
    // early window above it, else at half a window, else half a window after the last.
    const int64_t since = last_look < 0 ? 0 : int64_t(n_embeddings) - last_look;
    const int64_t seen = last_look < 0 ? 0 : int64_t(n_window) - since;
    int64_t next = step;
    for (size_t w : early_looks)
        if (w > 0 && int64_t(w) > seen) next = std::min(next, int64_t(w));
    if (seen < next) return int64_t(n_window) >= next;
    return since >= step;
}

bool lazy_widen_due(size_t n_window, size_t max_query_embeddings, bool final) {
    return final || n_window >= max_query_embeddings;
}

std::vector<size_t> LazyIndex::early_looks() const {
    std::vector<size_t> out;
    const PairKeyHeader& h = reader_.header();
    if (params_.short_look_pairs > 0 && h.short_span > 0)
        out.push_back(h.short_span / query_step_ + params_.short_look_pairs);
    else if (params_.first_look_pairs > 0)
        out.push_back(h.span / query_step_ + params_.first_look_pairs);
    return out;
}

Result<std::unique_ptr<LazyIndex>> LazyIndex::create(
    const ModelInfo& model, const std::string& manifest_text, const uint8_t* quantizer,
    size_t quantizer_size, const uint8_t* pages_header, size_t pages_header_size,
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
    Result<std::optional<DirectoryPagesManifest>> pages_entry =
        parse_directory_pages_manifest(manifest_text, "manifest.json");
    if (!pages_entry) return pages_entry.status();
    if (!pages_entry->has_value())
        return Status::error(
            "lazy index: the index has no directory pages (rebuild it with earshot build "
            "--pair-keys 2)");
    Result<DirectoryPagesHeader> pages = read_directory_pages_header(
        **pages_entry, pages_header, pages_header_size, (*pages_entry)->header_file);
    if (!pages) return pages.status();
    // No block is known until its directory page is read.
    if (Status st = base->set_block_entries({}); !st) return st;
    if (pages->model_hash != base->model_hash() ||
        pages->quantizer_sha256 != base->quantizer_sha256() ||
        pages->blocks_file != base->manifest_blocks_file() ||
        pages->n_blocks != base->n_shards_expected())
        return Status::error("lazy index: " + (*pages_entry)->header_file +
                             " belongs to another model, quantizer or songs file");
    Result<PairKeyHeader> header =
        read_pair_key_header(**entry, pair_header, pair_header_size, (*entry)->header_file);
    if (!header) return header.status();
    if (header->n_lists != uint32_t(base->n_lists()))
        return Status::error("lazy index: the pair-key level has " +
                             std::to_string(header->n_lists) + " lists where the quantizer has " +
                             std::to_string(base->n_lists()));
    const double ratio = model_query_hop_s(model) / base->hop_s();
    const auto step = uint32_t(std::lround(ratio));
    if (step == 0 || std::fabs(ratio - step) > 1e-6 || header->span % step ||
        header->short_span % step)
        return Status::error("lazy index: the model's query hop does not divide the pair spans");
    if (pages->n_songs != header->n_songs)
        return Status::error("lazy index: the pair-key level numbers " +
                             std::to_string(header->n_songs) + " songs where the directory holds " +
                             std::to_string(pages->n_songs));
    std::unique_ptr<LazyIndex> lazy(
        new LazyIndex(std::move(base), std::move(**entry), std::move(header.value()),
                      std::move(**pages_entry), std::move(pages.value()), step, params));
    lazy->query_hop_s_ = model_query_hop_s(model);
    lazy->preload_bytes_ =
        manifest_text.size() + quantizer_size + pages_header_size + pair_header_size;
    // Evenly spaced from the last block back: distinct, and a catalogue's first blocks (often
    // the ones it was tested with) are the last taken.
    const uint64_t n_blocks = lazy->pages_header_.n_blocks;
    const uint64_t k = std::min<uint64_t>(params.background_blocks, n_blocks);
    for (uint64_t i = 0; i < k; ++i)
        lazy->background_.push_back(uint32_t(n_blocks - 1 - i * n_blocks / k));
    std::sort(lazy->background_.begin(), lazy->background_.end());
    for (uint32_t b : lazy->background_)
        lazy->background_pages_.push_back(lazy->pages_header_.page_of_block(b));
    lazy->background_pages_.erase(
        std::unique(lazy->background_pages_.begin(), lazy->background_pages_.end()),
        lazy->background_pages_.end());
    return lazy;
}

LazyIndex::LazyIndex(std::shared_ptr<Index> base, PairKeyManifest manifest, PairKeyHeader header,
                     DirectoryPagesManifest pages_manifest, DirectoryPagesHeader pages_header,
                     uint32_t query_step, const LazyIndexParams& params)
    : base_(std::move(base)),
      pair_manifest_(std::move(manifest)),
      reader_(std::move(header), params.pair_cache_bytes),
      query_step_(query_step),
      params_(params),
      pages_manifest_(std::move(pages_manifest)),
      pages_header_(std::move(pages_header)) {}

LazyFetch LazyIndex::page_fetch(uint32_t page) const {
    return {LazyFetch::Kind::kDirectoryPage, page, pages_manifest_.pages_file,
            pages_header_.page_range(page)};
}

std::optional<Index::FileRange> LazyIndex::block_range(uint32_t block) const {
    const auto page = directory_pages_.find(pages_header_.page_of_block(block));
    if (page == directory_pages_.end()) return std::nullopt;
    return page->second.block_range(pages_header_.blocks_file, block);
}

std::vector<LazyFetch> LazyIndex::preload_fetches() const {
    std::vector<LazyFetch> out;
    for (uint32_t p : background_pages_)
        if (!directory_pages_.count(p)) out.push_back(page_fetch(p));
    if (!out.empty()) return out;
    for (uint32_t b : background_) {
        if (pinned_.count(b)) continue;
        const Index::FileRange r = *block_range(b);
        out.push_back({LazyFetch::Kind::kBlock, b, r.file, ByteRange{r.offset, r.bytes}});
    }
    return out;
}

void LazyIndex::clear_cache() {
    reader_ = PairKeyReader(reader_.header(), params_.pair_cache_bytes);
    block_lru_.clear();
    block_at_.clear();
    blocks_cached_ = 0;
    drop_directory_pages(false);
    step_ = Step::kIdle;
}

void LazyIndex::drop_directory_pages(bool keep_query_pages) {
    for (auto it = directory_pages_.begin(); it != directory_pages_.end();) {
        const uint32_t p = it->first;
        if (std::binary_search(background_pages_.begin(), background_pages_.end(), p) ||
            (keep_query_pages && std::binary_search(query_pages_.begin(), query_pages_.end(), p))) {
            ++it;
            continue;
        }
        directory_cached_ -= it->second.bytes();
        it = directory_pages_.erase(it);
    }
}

void LazyIndex::keep_page(DirectoryPage page) {
    const uint32_t number = page.page;
    if (const auto old = directory_pages_.find(number); old != directory_pages_.end()) {
        directory_cached_ -= old->second.bytes();
        directory_pages_.erase(old);
    }
    // Pages are small (1.4 KB for 32 blocks) and few per query: over the budget, every page
    // neither the background's nor the current query's goes at once.
    if (directory_cached_ + page.bytes() > params_.directory_cache_bytes)
        drop_directory_pages(true);
    directory_cached_ += page.bytes();
    directory_pages_.emplace(number, std::move(page));
}

size_t lazy_keys_per_pair(size_t n_pairs, const LazyIndexParams& params) {
    if (params.pair_key_budget == 0 || n_pairs == 0) return 1;
    return std::max<size_t>(1, std::min(params.pair_key_budget / n_pairs,
                                        std::max<size_t>(1, params.max_keys_per_pair)));
}

namespace {
size_t pairs_apart(size_t n, size_t apart) { return n > apart ? n - apart : 0; }
}  // namespace

std::vector<LazySpan> lazy_query_spans(size_t n, uint32_t query_step, uint32_t span,
                                       uint32_t short_span, const LazyIndexParams& params) {
    const size_t long_pairs = pairs_apart(n, span / query_step);
    std::vector<LazySpan> out;
    if (long_pairs > 0 || short_span == 0) out.push_back({span, false});
    if (short_span > 0 && (long_pairs == 0 || long_pairs <= params.both_spans_max_pairs))
        out.push_back({short_span, true});
    return out;
}

Status LazyIndex::begin_query(const float* embeddings, size_t n) {
    step_ = Step::kIdle;
    candidates_.clear();
    more_.clear();
    blocks_.clear();
    query_pages_.clear();
    widened_ = false;
    const size_t dim = size_t(base_->dim());
    query_.assign(embeddings, embeddings + n * dim);
    if (Status st = plan_probes(query_.data(), n, params_, &probes_, &keys_); !st) return st;
    step_ = Step::kPages;
    return Status::ok();
}

Status LazyIndex::plan_probes(const float* embeddings, size_t n, const LazyIndexParams& keys,
                              std::vector<PairProbe>* probes_out,
                              std::vector<uint32_t>* keys_out) const {
    const Quantizer& q = base_->quantizer();
    const size_t dim = size_t(base_->dim());
    const PairKeyHeader& h = reader_.header();
    const std::vector<LazySpan> spans =
        lazy_query_spans(n, query_step_, h.span, h.short_span, params_);
    size_t n_pairs = 0;
    for (const LazySpan& s : spans) n_pairs += pairs_apart(n, s.span / query_step_);
    const size_t per_pair = lazy_keys_per_pair(n_pairs, keys);
    const size_t m = std::min(per_pair, size_t(q.n_lists));  // a pair's best keys use no farther
    std::vector<uint32_t> lists(n * m);
    std::vector<float> sq_dists(n * m);
    for (size_t i = 0; i < n; ++i)
        q.nearest(embeddings + i * dim, int(m), &lists[i * m], &sq_dists[i * m]);
    probes_out->clear();
    for (const LazySpan& s : spans) {
        Result<std::vector<PairProbe>> probes =
            pair_query_probes(h.n_lists, s.span, lists.data(), sq_dists.data(), n, m, query_step_,
                              std::min(per_pair, m * m), pair_key_base(h.n_lists, s.short_keys));
        if (!probes) return probes.status();
        probes_out->insert(probes_out->end(), probes->begin(), probes->end());
    }
    *keys_out = pair_probe_keys(*probes_out);
    return Status::ok();
}

Status LazyIndex::keep_rarest_keys() {
    if (params_.max_query_postings == 0) return Status::ok();
    std::vector<std::pair<uint32_t, uint32_t>> by_count;  // (postings, key)
    by_count.reserve(keys_.size());
    for (uint32_t key : keys_) {
        Result<uint32_t> count = reader_.posting_count(key);
        if (!count) return count.status();
        by_count.emplace_back(count.value(), key);
    }
    std::sort(by_count.begin(), by_count.end());
    std::vector<uint32_t> kept;
    uint64_t postings = 0;
    for (const auto& [count, key] : by_count) {
        if (postings + count > params_.max_query_postings) break;
        postings += count;
        kept.push_back(key);
    }
    if (kept.size() == keys_.size()) return Status::ok();
    std::sort(kept.begin(), kept.end());
    probes_.erase(std::remove_if(probes_.begin(), probes_.end(),
                                 [&kept](const PairProbe& p) {
                                     return !std::binary_search(kept.begin(), kept.end(), p.key);
                                 }),
                  probes_.end());
    keys_ = std::move(kept);
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
        if (Status st = keep_rarest_keys(); !st) return st;
        step_ = Step::kUnits;
    }
    if (step_ == Step::kUnits) {
        Result<std::vector<PairKeyUnitFetch>> units = reader_.missing_units(keys_);
        if (!units) return units.status();
        for (const PairKeyUnitFetch& u : units.value())
            out.push_back(
                {LazyFetch::Kind::kPairUnit, u.key, pair_manifest_.postings_file, u.range});
        if (!out.empty()) return out;
        const size_t keep = params_.max_candidates + params_.more_candidates;
        Result<std::vector<PairCandidate>> votes =
            reader_.vote(probes_, keep, params_.vote_slack, params_.key_weight);
        if (!votes) return votes.status();
        for (const PairCandidate& c : votes.value())
            if (c.song >= pages_header_.n_songs)
                return Status::error("lazy index: candidate song " + std::to_string(c.song) +
                                     " is beyond the directory's " +
                                     std::to_string(pages_header_.n_songs));
        candidates_ = std::move(votes.value());
        if (!widened_ && candidates_.size() > params_.max_candidates) {
            more_.assign(candidates_.begin() + ptrdiff_t(params_.max_candidates),
                         candidates_.end());
            candidates_.resize(params_.max_candidates);
        }
        plan_candidate_pages();
        step_ = Step::kDirectoryPages;
    }
    if (step_ == Step::kDirectoryPages) {
        for (uint32_t p : query_pages_)
            if (!directory_pages_.count(p)) out.push_back(page_fetch(p));
        if (!out.empty()) return out;
        blocks_.clear();
        for (const PairCandidate& c : candidates_)
            blocks_.push_back(
                directory_pages_.at(pages_header_.page_of_song(c.song)).block_of_song(c.song));
        std::sort(blocks_.begin(), blocks_.end());
        blocks_.erase(std::unique(blocks_.begin(), blocks_.end()), blocks_.end());
        step_ = Step::kBlocks;
    }
    if (step_ == Step::kBlocks) {
        for (uint32_t b : blocks_) {
            if (find_block(b)) continue;
            const Index::FileRange r = *block_range(b);
            out.push_back({LazyFetch::Kind::kBlock, b, r.file, ByteRange{r.offset, r.bytes}});
        }
        if (!out.empty()) return out;
        stats_.block_hits += blocks_.size();
        step_ = Step::kReady;
    }
    return out;
}

const char* lazy_fetch_kind_name(LazyFetch::Kind kind) {
    switch (kind) {
        case LazyFetch::Kind::kPairPage:
            return "page";
        case LazyFetch::Kind::kPairUnit:
            return "unit";
        case LazyFetch::Kind::kDirectoryPage:
            return "directory";
        case LazyFetch::Kind::kBlock:
            break;
    }
    return "block";
}

std::optional<LazyFetch::Kind> lazy_fetch_kind_from_name(const std::string& name) {
    for (LazyFetch::Kind kind : {LazyFetch::Kind::kPairPage, LazyFetch::Kind::kPairUnit,
                                 LazyFetch::Kind::kDirectoryPage, LazyFetch::Kind::kBlock})
        if (name == lazy_fetch_kind_name(kind)) return kind;
    return std::nullopt;
}

void LazyIndex::plan_candidate_pages() {
    query_pages_.clear();
    for (const PairCandidate& c : candidates_)
        query_pages_.push_back(pages_header_.page_of_song(c.song));
    std::sort(query_pages_.begin(), query_pages_.end());
    query_pages_.erase(std::unique(query_pages_.begin(), query_pages_.end()), query_pages_.end());
}

bool LazyIndex::widen() {
    if (step_ != Step::kReady || widened_ || params_.more_candidates == 0) return false;
    if (params_.wide_keys_per_pair > params_.max_keys_per_pair) {
        LazyIndexParams wide = params_;
        wide.pair_key_budget = params_.wide_pair_key_budget;
        wide.max_keys_per_pair = params_.wide_keys_per_pair;
        std::vector<PairProbe> probes;
        std::vector<uint32_t> keys;
        const size_t n = query_.size() / size_t(base_->dim());
        if (plan_probes(query_.data(), n, wide, &probes, &keys) && keys.size() > keys_.size()) {
            // Phase 1 again over all the keys (the first round's pages and units are held);
            // its best max_candidates + more_candidates are the candidates.
            probes_ = std::move(probes);
            keys_ = std::move(keys);
            widened_ = true;
            more_.clear();
            step_ = Step::kPages;
            return true;
        }
    }
    if (more_.empty()) return false;
    widened_ = true;
    candidates_.insert(candidates_.end(), more_.begin(), more_.end());
    more_.clear();
    plan_candidate_pages();
    step_ = Step::kDirectoryPages;
    return true;
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
        case LazyFetch::Kind::kDirectoryPage: {
            Result<DirectoryPage> page = read_directory_page(pages_header_, fetch.id, bytes, size,
                                                             base_->manifest_blocks_bytes());
            if (!page) {
                st = page.status();
                break;
            }
            keep_page(std::move(page.value()));
            break;
        }
        case LazyFetch::Kind::kBlock: {
            if (fetch.id >= pages_header_.n_blocks) {
                st = Status::error("lazy index: block " + std::to_string(fetch.id) +
                                   " is not in the directory");
                break;
            }
            const std::optional<Index::FileRange> range = block_range(fetch.id);
            if (!range) {
                st = Status::error("lazy index: block " + std::to_string(fetch.id) +
                                   ": its directory page is not held");
                break;
            }
            const Index::FileRange& r = *range;
            if (size != r.bytes || index_file_sha256_hex(bytes, size) != r.sha256) {
                st = Status::error(r.file + " block " + std::to_string(fetch.id) +
                                   ": its size or SHA-256 is not the directory's (changed or "
                                   "truncated in transit)");
                break;
            }
            if (std::binary_search(background_.begin(), background_.end(), fetch.id)) {
                pinned_[fetch.id].assign(bytes, bytes + size);
                // The last of them: their index now, while a page loads, not at its first look.
                if (pinned_.size() == background_.size() && !(st = make_background_index()))
                    pinned_.erase(fetch.id);  // refused: nothing of it kept
            } else {
                keep_block(fetch.id, std::vector<uint8_t>(bytes, bytes + size));
            }
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
    if (candidates_.empty()) return std::shared_ptr<const Index>(std::make_shared<Index>(*base_));
    if (Status st = make_background_index(); !st) return st;
    auto index = std::make_shared<Index>(*background_index_);
    std::vector<uint32_t> blocks = background_;  // both ascending: merged, each once
    blocks.insert(blocks.end(), blocks_.begin(), blocks_.end());
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
    std::vector<uint32_t> added;  // the candidates' blocks that are not background ones
    std::set_difference(blocks_.begin(), blocks_.end(), background_.begin(), background_.end(),
                        std::back_inserter(added));
    if (Status st = add_blocks(index.get(), blocks, added); !st) return st;
    return std::shared_ptr<const Index>(std::move(index));
}

Status LazyIndex::make_background_index() {
    // The background blocks once, in an index each query's starts from: checking, parsing and
    // listing them again for every query cost most of a short query's CPU.
    if (background_index_) return Status::ok();
    auto index = std::make_shared<Index>(*base_);
    if (Status st = add_blocks(index.get(), background_, background_); !st) return st;
    background_index_ = std::move(index);
    return Status::ok();
}

Status LazyIndex::add_blocks(Index* index, const std::vector<uint32_t>& entries,
                             const std::vector<uint32_t>& blocks) {
    std::vector<std::pair<uint32_t, Index::FileRange>> ranges;
    for (uint32_t b : entries) {
        std::optional<Index::FileRange> r = block_range(b);
        if (!r)
            return Status::error("lazy index: block " + std::to_string(b) +
                                 ": its directory page is not held");
        ranges.emplace_back(b, std::move(*r));
    }
    if (Status st = index->set_block_entries(ranges); !st) return st;
    for (uint32_t b : blocks) {
        const std::vector<uint8_t>* bytes = find_block(b);
        if (!bytes) return Status::error("lazy index: block " + std::to_string(b) + " is not held");
        // provide() kept these bytes only once their SHA-256 was this directory entry's.
        const auto entry = std::lower_bound(
            ranges.begin(), ranges.end(), b,
            [](const std::pair<uint32_t, Index::FileRange>& e, uint32_t x) { return e.first < x; });
        if (Status st = index->add_shard(bytes->data(), bytes->size(),
                                         pages_header_.blocks_file + " block " + std::to_string(b),
                                         entry->second.sha256);
            !st)
            return st;
    }
    return Status::ok();
}

Result<MatchResult> LazyIndex::match(const float* embeddings, size_t n, const MatchParams& params) {
    Result<std::shared_ptr<const Index>> index = query_index();
    if (!index) return index.status();
    return Matcher(**index, params).match(embeddings, n, query_hop_s_);
}

Result<MatchResult> LazyIndex::rehearse(const float* embeddings, size_t n,
                                        const MatchParams& params) {
    std::vector<PairProbe> probes;
    std::vector<uint32_t> keys;
    if (Status st = plan_probes(embeddings, n, params_, &probes, &keys); !st) return st;
    if (Status st = make_background_index(); !st) return st;
    Index index(*background_index_);
    if (Status st = add_blocks(&index, background_, {}); !st) return st;
    return Matcher(index, params).match(embeddings, n, query_hop_s_);
}

}  // namespace earshot
