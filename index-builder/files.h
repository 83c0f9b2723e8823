// File helpers for the CLI: whole-file reads and the atomic write of an index folder.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/native/index_folder.h"  // read_file_bytes
#include "core/status.h"

namespace earshot::cli {

inline Result<std::vector<uint8_t>> read_file(const std::string& path) {
    return read_file_bytes(path);
}

// Writes every file into a sibling staging folder (`<out>.earshot-partial.<pid>`), fsyncs the
// files and the folder, then swaps it with `out_dir` in one rename (RENAME_EXCHANGE) and fsyncs
// the parent; the old index is deleted after. A process killed at any point leaves `out_dir`
// holding the complete old index or the complete new one, plus leftovers the next build
// removes. Where the file system has no exchange rename, the old folder is moved aside
// (`<out>.earshot-old.<pid>`) and the new one moved in: killed between the two, `out_dir` is
// missing until the next build puts the old index back (recover_interrupted_write).
Status write_folder_atomically(const std::string& out_dir,
                               const std::map<std::string, std::vector<uint8_t>>& files);

// The same in steps, for a build that writes its files as they are made (its shards as each one
// fills) and so never holds the whole index in memory:
//
//   Result<StagedFolder> staged = StagedFolder::create(out_dir);  // <out>.earshot-partial.<pid>
//   staged->write("shard-00000.es", bytes);                       // written and fsynced
//   staged->commit();                                             // the atomic swap
//
// Destroyed without commit() (an error, an exception), it removes its staging folder; killed, it
// leaves it for the next build to remove. Another build's staging folder is never taken for a
// leftover while the process that writes it runs.
class StagedFolder {
public:
    static Result<StagedFolder> create(const std::string& out_dir);
    StagedFolder(StagedFolder&& other) noexcept;
    StagedFolder& operator=(StagedFolder&&) = delete;
    StagedFolder(const StagedFolder&) = delete;
    ~StagedFolder();

    // `name` is a plain file name (no separator); the file is complete on disk when it returns.
    Status write(const std::string& name, const std::vector<uint8_t>& bytes);
    // Appends to `name` (created by the first call); flushed to disk by commit().
    Status append(const std::string& name, const std::vector<uint8_t>& bytes);
    // Fsyncs the folder and swaps it with out_dir (write_folder_atomically's steps). After an
    // error out_dir is as it was and the staging folder is gone.
    Status commit();
    const std::string& staging_path() const { return staging_; }

private:
    StagedFolder(std::string out, std::string staging)
        : out_(std::move(out)), staging_(std::move(staging)) {}
    std::string out_, staging_;
    std::vector<std::string> appended_;  // files append() wrote, fsynced by commit()
    bool done_ = false;  // committed or abandoned: nothing left to remove
};

// What a killed write_folder_atomically left next to `out_dir`: an old index moved aside goes
// back into place if `out_dir` is missing, staging folders are removed. Runs at the start of a
// build, so even a build that then fails restores the previous index.
void recover_interrupted_write(const std::string& out_dir);

}  // namespace earshot::cli
