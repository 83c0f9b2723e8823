#include "core/pair_key_reader.h"

#include <optional>
#include <string>
#include <utility>

namespace earshot {

PairKeyReader::PairKeyReader(PairKeyHeader header, uint64_t budget_bytes)
    : header_(std::move(header)), budget_(budget_bytes) {}

Result<std::vector<uint32_t>> PairKeyReader::query_keys(const uint32_t* query_lists, size_t n,
                                                        uint32_t query_step) const {
    return pair_query_keys(header_.n_lists, header_.span, query_lists, n, query_step);
}

PairKeyReader::Entry* PairKeyReader::find(bool is_page, uint32_t id) {
    const auto it = where_.find(slot(is_page, id));
    if (it == where_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);  // iterators stay valid
    return &*it->second;
}

void PairKeyReader::keep(Entry entry) {
    const uint64_t s = slot(entry.is_page, entry.id);
    if (const auto old = where_.find(s); old != where_.end()) {  // added twice: the newer wins
        cached_ -= old->second->bytes;
        lru_.erase(old->second);
        where_.erase(old);
    }
    cached_ += entry.bytes;
    lru_.push_front(std::move(entry));
    where_[s] = lru_.begin();
    // Oldest first out; the entry just kept stays even if it alone is over the budget.
    while (cached_ > budget_ && lru_.size() > 1) {
        cached_ -= lru_.back().bytes;
        where_.erase(slot(lru_.back().is_page, lru_.back().id));
        lru_.pop_back();
        ++stats_.evicted;
    }
}

std::vector<uint32_t> PairKeyReader::missing_pages(const std::vector<uint32_t>& keys) {
    std::vector<uint32_t> out;
    uint32_t last = UINT32_MAX;
    for (uint32_t key : keys) {
        const uint32_t page = header_.page_of(key);
        if (page == last) continue;  // keys are sorted: so are their pages
        last = page;
        if (find(true, page)) {
            ++stats_.page_hits;
            continue;
        }
        if (page < header_.n_pages) out.push_back(page);
    }
    return out;
}

Status PairKeyReader::add_page(uint32_t page, const uint8_t* record, size_t size) {
    Result<PairKeyPage> read = read_pair_key_page(header_, page, record, size);
    if (!read) {
        ++stats_.rejected;
        return read.status();
    }
    Entry e;
    e.is_page = true;
    e.id = page;
    e.bytes = size;
    e.page = std::move(read.value());
    keep(std::move(e));
    ++stats_.pages_added;
    stats_.bytes_added += size;
    return Status::ok();
}

Result<std::vector<PairKeyUnitFetch>> PairKeyReader::missing_units(
    const std::vector<uint32_t>& keys) {
    std::vector<PairKeyUnitFetch> out;
    for (uint32_t key : keys) {
        if (find(false, key)) {
            ++stats_.unit_hits;
            continue;
        }
        const Entry* page = find(true, header_.page_of(key));
        if (!page)
            return Status::error("pair key " + std::to_string(key) + ": its page " +
                                 std::to_string(header_.page_of(key)) +
                                 " is not held (fetch the missing pages first)");
        const ByteRange range = page->page.unit_range(key);
        if (range.size) out.push_back({key, range});
    }
    return out;
}

Status PairKeyReader::add_unit(uint32_t key, const uint8_t* unit, size_t size) {
    const Entry* page = find(true, header_.page_of(key));
    if (!page) {
        ++stats_.rejected;
        return Status::error("pair key " + std::to_string(key) + ": its page " +
                             std::to_string(header_.page_of(key)) +
                             " is not held, so its unit cannot be checked");
    }
    Result<std::vector<PairPosting>> postings = read_pair_key_unit(page->page, key, unit, size);
    if (!postings) {
        ++stats_.rejected;
        return postings.status();
    }
    Entry e;
    e.id = key;
    e.bytes = size;
    e.postings = std::move(postings.value());
    keep(std::move(e));
    ++stats_.units_added;
    stats_.bytes_added += size;
    return Status::ok();
}

Result<uint32_t> PairKeyReader::posting_count(uint32_t key) {
    const Entry* page = find(true, header_.page_of(key));
    if (!page)
        return Status::error("pair key " + std::to_string(key) + ": its page " +
                             std::to_string(header_.page_of(key)) + " is not held");
    const std::optional<uint32_t> count = page->page.count(key);
    if (!count) return Status::error("pair key " + std::to_string(key) + " is not on its page");
    return *count;
}

Result<PairPostingSpan> PairKeyReader::postings(uint32_t key) {
    if (const Entry* unit = find(false, key))
        return PairPostingSpan{unit->postings.data(), unit->postings.size()};
    const Entry* page = find(true, header_.page_of(key));
    if (!page || page->page.unit_range(key).size)
        return Status::error("pair key " + std::to_string(key) + ": its " +
                             (page ? "postings are" : "page is") + " not held");
    return PairPostingSpan{};
}

Result<std::vector<PairCandidate>> PairKeyReader::vote(const uint32_t* query_lists, size_t n,
                                                       uint32_t query_step, size_t max_candidates) {
    Result<std::vector<PairProbe>> probes =
        pair_query_probes(header_.n_lists, header_.span, query_lists, nullptr, n, 1, query_step, 1);
    if (!probes) return probes.status();
    return vote(probes.value(), max_candidates);
}

Result<std::vector<PairCandidate>> PairKeyReader::vote(const std::vector<PairProbe>& probes,
                                                       size_t max_candidates, uint32_t delta_slack,
                                                       double key_weight) {
    // Every key is settled first: a held unit, or a held page that says the key is empty.
    std::unordered_map<uint32_t, PairPostingSpan> spans;
    for (uint32_t key : pair_probe_keys(probes)) {
        Result<PairPostingSpan> held = postings(key);
        if (!held)
            return Status::error(held.message() +
                                 " (fetch what missing_pages and missing_units name; the cache "
                                 "budget must hold one query's bytes)");
        spans[key] = held.value();
    }
    return pair_vote_probes(
        probes, max_candidates, [&spans](uint32_t key) { return spans.at(key); }, delta_slack,
        key_weight);
}

}  // namespace earshot
