#include "index-builder/catalog.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/index.h"

namespace earshot::cli {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream in(line);
    while (std::getline(in, cell, '\t')) cells.push_back(cell);
    if (!line.empty() && line.back() == '\t') cells.emplace_back();
    return cells;
}

// "some_track-name" -> "Some Track Name"
std::string title_from_stem(const std::string& stem) {
    std::string title;
    bool new_word = true;
    for (char c : stem) {
        if (c == '_' || c == '-' || c == ' ') {
            if (!title.empty() && title.back() != ' ') title += ' ';
            new_word = true;
        } else {
            title += new_word ? char(std::toupper(static_cast<unsigned char>(c))) : c;
            new_word = false;
        }
    }
    while (!title.empty() && title.back() == ' ') title.pop_back();
    return title.empty() ? stem : title;
}

Result<std::vector<CatalogEntry>> read_tsv(const std::string& path) {
    std::ifstream in(path);
    if (!in) return Status::error("cannot open catalog " + path);
    std::string line;
    if (!std::getline(in, line)) return Status::error("catalog " + path + " is empty");
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::vector<std::string> header = split_tabs(line);
    std::map<std::string, size_t> column;
    for (size_t i = 0; i < header.size(); ++i) column[header[i]] = i;
    for (const char* required : {"id", "path"}) {
        if (!column.count(required)) {
            return Status::error("catalog " + path + ": the header line has no '" + required +
                                 "' column (expected tab-separated id, path, title, album)");
        }
    }
    const fs::path base = fs::path(path).parent_path();
    std::vector<CatalogEntry> entries;
    size_t line_number = 1;
    while (std::getline(in, line)) {
        ++line_number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        const std::vector<std::string> cells = split_tabs(line);
        auto cell = [&](const char* name) -> std::string {
            auto it = column.find(name);
            return it != column.end() && it->second < cells.size() ? cells[it->second] : "";
        };
        CatalogEntry e{cell("id"), cell("path"), cell("title"), cell("album")};
        const std::string where = "catalog " + path + " line " + std::to_string(line_number);
        if (e.id.empty() || e.path.empty()) return Status::error(where + ": empty id or path");
        if (const std::string p = cell("popularity"); !p.empty()) {
            char* end = nullptr;
            const double v = std::strtod(p.c_str(), &end);
            if (end != p.c_str() + p.size() || !std::isfinite(v) || v < 0.0) {
                return Status::error(where + ": popularity '" + p +
                                     "' is not a number >= 0 (plays, streams; empty: unknown)");
            }
            e.popularity = v;
        }
        if (fs::path(e.path).is_relative()) e.path = (base / e.path).string();
        if (e.title.empty()) e.title = title_from_stem(fs::path(e.path).stem().string());
        entries.push_back(std::move(e));
    }
    return entries;
}

std::vector<std::string> audio_files_under(const fs::path& folder) {
    std::vector<std::string> paths;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(
             folder, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && is_audio_extension(it->path().string())) {
            paths.push_back(it->path().string());
        }
    }
    std::sort(paths.begin(), paths.end());
    return paths;
}

}  // namespace

std::vector<double> catalog_log_priors(const std::vector<CatalogEntry>& entries) {
    std::vector<double> priors(entries.size(), 0.0);
    double sum = 0.0;
    size_t n = 0;
    for (const CatalogEntry& e : entries) {
        if (e.popularity < 0.0) continue;
        sum += std::log1p(e.popularity);
        ++n;
    }
    if (n == 0) return priors;
    const double mean = sum / double(n);
    for (size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].popularity < 0.0) continue;
        priors[i] =
            std::clamp(std::log1p(entries[i].popularity) - mean, -kMaxLogPrior, kMaxLogPrior);
    }
    return priors;
}

bool is_audio_extension(const std::string& path) {
    static const char* kExtensions[] = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3",
                                        ".aif", ".aiff"};
    const std::string ext = lower(fs::path(path).extension().string());
    return std::any_of(std::begin(kExtensions), std::end(kExtensions),
                       [&](const char* e) { return ext == e; });
}

Result<std::vector<CatalogEntry>> read_catalog(const std::string& folder_or_tsv) {
    std::error_code ec;
    if (fs::is_directory(folder_or_tsv, ec)) {
        std::vector<CatalogEntry> entries;
        std::map<std::string, int> seen;
        const fs::path root(folder_or_tsv);
        for (const std::string& path : audio_files_under(root)) {
            const fs::path p(path);
            // Id: the path relative to the folder, without extension (unique by construction).
            std::string id = fs::relative(p, root, ec).replace_extension().generic_string();
            if (ec || id.empty()) id = p.stem().string();
            std::string album = fs::relative(p.parent_path(), root, ec).generic_string();
            if (album == "." || ec) album = root.filename().string();
            entries.push_back({id, path, title_from_stem(p.stem().string()), album});
        }
        if (entries.empty()) {
            return Status::error("no audio files (.wav .flac .ogg .opus .mp3 ...) found under " +
                                 folder_or_tsv);
        }
        return entries;
    }
    if (!fs::exists(folder_or_tsv, ec)) {
        return Status::error(folder_or_tsv + " does not exist (give a folder of audio files or a "
                                             "TSV catalog)");
    }
    return read_tsv(folder_or_tsv);
}

Result<std::vector<std::string>> expand_audio_paths(const std::vector<std::string>& inputs) {
    std::vector<std::string> paths;
    for (const std::string& input : inputs) {
        std::error_code ec;
        if (fs::is_directory(input, ec)) {
            std::vector<std::string> found = audio_files_under(input);
            if (found.empty()) return Status::error("no audio files found under " + input);
            paths.insert(paths.end(), found.begin(), found.end());
        } else {
            paths.push_back(input);  // unreadable files are reported per file, not here
        }
    }
    return paths;
}

}  // namespace earshot::cli
