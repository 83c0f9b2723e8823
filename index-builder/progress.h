// A progress bar on stderr for long work: redrawn in place on a terminal, a line every ~10 %
// otherwise (logs stay readable). Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>

namespace earshot::cli {

class Progress {
public:
    Progress(std::string label, size_t total, bool enabled);
    void advance(size_t n = 1);
    void finish();

private:
    void draw(bool final_draw);
    std::mutex mutex_;
    std::string label_;
    size_t total_, done_ = 0;
    bool enabled_, tty_;
    int last_decile_ = -1;
    bool finished_ = false;  // the 100 % line was drawn
    std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace earshot::cli
