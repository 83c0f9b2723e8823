#include "index-builder/files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace earshot::cli {
namespace fs = std::filesystem;

namespace {

// Sibling names of an output folder `<name>`: `<name>.earshot-partial.<pid>` is always garbage
// (a staging folder being written, or an old index being deleted); `<name>.earshot-old.<pid>` is
// always a complete old index (moved aside by the two-rename swap).
const char* const kPartialTag = ".earshot-partial.";
const char* const kOldTag = ".earshot-old.";

fs::path normalized_out(const std::string& out_dir) {
    fs::path out = fs::absolute(out_dir).lexically_normal();
    if (out.filename().empty()) out = out.parent_path();
    return out;
}

// Writes `bytes` to `path` (appending with `append`, else replacing it); fsyncs unless
// `append` (the caller syncs the appended file once it is complete: sync_file).
Status write_and_sync(const fs::path& path, const std::vector<uint8_t>& bytes,
                      bool append = false) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0) return Status::error("cannot create " + path.string() + ": " + std::strerror(errno));
    size_t written = 0;
    while (written < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            const std::string why = std::strerror(errno);
            ::close(fd);
            return Status::error("cannot write " + path.string() + ": " + why);
        }
        written += size_t(n);
    }
    if ((!append && ::fsync(fd) != 0) || ::close(fd) != 0) {
        return Status::error("cannot flush " + path.string() + ": " + std::strerror(errno));
    }
    return Status::ok();
}

Status sync_file(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0 || ::fsync(fd) != 0) {
        const std::string why = std::strerror(errno);
        if (fd >= 0) ::close(fd);
        return Status::error("cannot flush " + path.string() + ": " + why);
    }
    ::close(fd);
    return Status::ok();
}

void sync_dir(const fs::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

// Fault injection for the crash test (tests/native/cli_test.cc): EARSHOT_TEST_KILL_AT=<step>
// makes the process SIGKILL itself when it reaches that step of the swap.
void kill_if_test_step(const char* step) {
    const char* at = std::getenv("EARSHOT_TEST_KILL_AT");
    if (at && std::strcmp(at, step) == 0) ::kill(::getpid(), SIGKILL);
}

// An exclusive lock on the parent folder, held while leftovers are judged and the swap runs,
// so two builds into one parent never see each other's staging folder as a leftover. Best
// effort: where the file system has no flock (some network file systems) it is skipped.
class ParentLock {
public:
    explicit ParentLock(const fs::path& parent)
        : fd_(::open(parent.c_str(), O_RDONLY | O_DIRECTORY)) {
        if (fd_ >= 0) {
            while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
            }
        }
    }
    ~ParentLock() {
        if (fd_ >= 0) ::close(fd_);  // releases the lock
    }
    ParentLock(const ParentLock&) = delete;
    ParentLock& operator=(const ParentLock&) = delete;

private:
    int fd_;
};

bool process_alive(int pid) {
    if (pid <= 0) return false;
    if (pid == ::getpid()) return true;
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

// Under the parent lock: an old index moved aside by a killed two-rename swap goes back into
// place if nothing took it; every other leftover of `out` is removed.
void recover_leftovers(const fs::path& out) {
    const fs::path parent = out.parent_path();
    const std::string name = out.filename().string();
    std::error_code ec;
    std::vector<std::pair<fs::path, bool>> leftovers;  // path, is an old index
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
        const std::string leftover = entry.path().filename().string();
        if (leftover.compare(0, name.size(), name) != 0) continue;
        const std::string tail = leftover.substr(name.size());
        const bool is_old = tail.rfind(kOldTag, 0) == 0;
        if (!is_old && tail.rfind(kPartialTag, 0) != 0) continue;
        const std::string pid = tail.substr(std::strlen(is_old ? kOldTag : kPartialTag));
        if (pid.empty() || pid.size() > 9 ||
            pid.find_first_not_of("0123456789") != std::string::npos)
            continue;
        // A staging folder whose writer still runs is another build's (a build stages its
        // files as it goes): not a leftover. A pid reused since only delays the clean-up.
        if (!is_old && process_alive(std::stoi(pid))) continue;
        leftovers.emplace_back(entry.path(), is_old);
    }
    if (leftovers.empty()) return;
    bool out_exists = fs::exists(out, ec);
    for (const auto& [path, is_old] : leftovers) {
        if (is_old && !out_exists) {  // put back; kept where it is if that fails
            fs::rename(path, out, ec);
            out_exists = !ec;
            continue;
        }
        fs::remove_all(path, ec);
    }
    sync_dir(parent);
}

enum class Exchange { kDone, kUnsupported, kFailed };

// Swaps two folders in one step (Linux renameat2 RENAME_EXCHANGE). kUnsupported where the
// kernel or the file system has no such rename (or EARSHOT_TEST_NO_EXCHANGE is set, for the
// crash test); nothing was changed then, nor on kFailed (errno says why).
Exchange exchange_folders(const fs::path& a, const fs::path& b) {
#if defined(__linux__) && defined(RENAME_EXCHANGE)
    const char* no_exchange = std::getenv("EARSHOT_TEST_NO_EXCHANGE");
    if (no_exchange && *no_exchange) return Exchange::kUnsupported;
    if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) {
        return Exchange::kDone;
    }
    return errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ? Exchange::kUnsupported
                                                                     : Exchange::kFailed;
#else
    (void)a;
    (void)b;
    return Exchange::kUnsupported;
#endif
}

}  // namespace

void recover_interrupted_write(const std::string& out_dir) {
    const fs::path out = normalized_out(out_dir);
    std::error_code ec;
    if (!fs::is_directory(out.parent_path(), ec)) return;
    ParentLock lock(out.parent_path());
    recover_leftovers(out);
}

Result<StagedFolder> StagedFolder::create(const std::string& out_dir) {
    const fs::path out = normalized_out(out_dir);
    const fs::path parent = out.parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) return Status::error("cannot create " + parent.string() + ": " + ec.message());
    ParentLock lock(parent);
    recover_leftovers(out);
    if (fs::exists(out, ec) && !fs::is_directory(out, ec)) {
        return Status::error(out.string() + " exists and is not a folder: choose another --out");
    }
    const fs::path staging =
        parent / (out.filename().string() + kPartialTag + std::to_string(::getpid()));
    fs::remove_all(staging, ec);  // this process's own, from an earlier abandoned try
    fs::create_directory(staging, ec);
    if (ec) return Status::error("cannot create " + staging.string() + ": " + ec.message());
    return StagedFolder(out.string(), staging.string());
}

StagedFolder::StagedFolder(StagedFolder&& other) noexcept
    : out_(std::move(other.out_)),
      staging_(std::move(other.staging_)),
      appended_(std::move(other.appended_)),
      done_(other.done_) {
    other.done_ = true;
}

StagedFolder::~StagedFolder() {
    if (done_) return;
    std::error_code ignored;
    fs::remove_all(staging_, ignored);
}

Status StagedFolder::write(const std::string& name, const std::vector<uint8_t>& bytes) {
    if (done_) return Status::error("internal: write to a committed or abandoned index folder");
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        return Status::error("internal: '" + name + "' is not a plain file name");
    Status st = write_and_sync(fs::path(staging_) / name, bytes);
    kill_if_test_step("staging");
    return st;
}

Status StagedFolder::append(const std::string& name, const std::vector<uint8_t>& bytes) {
    if (done_) return Status::error("internal: write to a committed or abandoned index folder");
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        return Status::error("internal: '" + name + "' is not a plain file name");
    if (std::find(appended_.begin(), appended_.end(), name) == appended_.end())
        appended_.push_back(name);
    return write_and_sync(fs::path(staging_) / name, bytes, true);
}

Status StagedFolder::commit() {
    if (done_) return Status::error("internal: the index folder was already committed");
    const fs::path out(out_), staging(staging_);
    const fs::path parent = out.parent_path();
    std::error_code ec;
    for (const std::string& name : appended_) {
        if (Status st = sync_file(staging / name); !st) return st;
    }
    sync_dir(staging);
    kill_if_test_step("synced");
    ParentLock lock(parent);
    // Every failure from here removes the staging folder: `out` is left as it was.
    const auto abandon = [&](const std::string& message) {
        std::error_code ignored;
        fs::remove_all(staging, ignored);
        done_ = true;
        return Status::error(message);
    };
    const bool had_old = fs::exists(out, ec);
    if (had_old && !fs::is_directory(out, ec)) {
        return abandon(out.string() + " exists and is not a folder: choose another --out");
    }
    const fs::path old = parent / (out.filename().string() + kOldTag + std::to_string(::getpid()));
    if (!had_old) {
        fs::rename(staging, out, ec);
        if (ec) return abandon("cannot move the new index into place: " + ec.message());
        sync_dir(parent);
        done_ = true;
        return Status::ok();
    }
    const Exchange exchange = exchange_folders(staging, out);
    if (exchange == Exchange::kFailed) {
        return abandon(std::string("cannot move the new index into place: ") +
                       std::strerror(errno));
    }
    if (exchange == Exchange::kDone) {
        // One step: `out` held the old index, now holds the new one; the old is at `staging`.
        sync_dir(parent);
        kill_if_test_step("swapped");
        fs::remove_all(staging, ec);
        done_ = true;
        return Status::ok();
    }
    // No one-step exchange here: move the old index aside, the new one in. Killed in between,
    // `out` is missing and the old index waits at `old`; the next build puts it back.
    fs::rename(out, old, ec);
    if (ec) return abandon("cannot move the old index aside: " + ec.message());
    sync_dir(parent);
    kill_if_test_step("moved-aside");
    fs::rename(staging, out, ec);
    if (ec) {
        const std::string why = ec.message();
        fs::rename(old, out, ec);
        return abandon("cannot move the new index into place: " + why);
    }
    sync_dir(parent);
    kill_if_test_step("swapped");
    // Renamed to a garbage name first, so a half-deleted old index is never put back.
    fs::rename(old, staging, ec);
    const fs::path garbage = ec ? old : staging;
    fs::remove_all(garbage, ec);
    done_ = true;
    return Status::ok();
}

Status write_folder_atomically(const std::string& out_dir,
                               const std::map<std::string, std::vector<uint8_t>>& files) {
    Result<StagedFolder> staged = StagedFolder::create(out_dir);
    if (!staged) return staged.status();
    for (const auto& [name, bytes] : files) {
        Status st = staged->write(name, bytes);
        if (!st) return st;
    }
    return staged->commit();
}

}  // namespace earshot::cli
