// What to index: a folder of audio files (searched recursively) or a TSV catalog with a header
// line and the columns id, path, title, album (others ignored; the format of
// ../shared/eval's catalog.tsv), and optionally popularity (plays, streams or any count-like
// number >= 0, for the popularity-weighted decision; an empty cell: unknown).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace earshot::cli {

struct CatalogEntry {
    std::string id, path, title, album;
    double popularity = -1.0;  // -1: not given
};

// Sets each entry's log prior (SongInfo::log_prior) from the popularities given: ln(p + 1) less
// its mean over those entries, clamped to +-kMaxLogPrior. Entries without one get none.
std::vector<double> catalog_log_priors(const std::vector<CatalogEntry>& entries);

// Extensions treated as audio when scanning a folder (lower case, with the dot).
bool is_audio_extension(const std::string& path);
Result<std::vector<CatalogEntry>> read_catalog(const std::string& folder_or_tsv);
// Query inputs: each argument is an audio file or a folder (its audio files, sorted by path).
Result<std::vector<std::string>> expand_audio_paths(const std::vector<std::string>& inputs);

}  // namespace earshot::cli
