#include "index-builder/progress.h"

#include <unistd.h>

#include <cstdio>

namespace earshot::cli {

Progress::Progress(std::string label, size_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(::isatty(2) == 1),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

void Progress::advance(size_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ += n;
    draw(false);
}

void Progress::finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!finished_) draw(true);
}

void Progress::draw(bool final_draw) {
    if (!enabled_ || total_ == 0) return;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed_s = std::chrono::duration<double>(now - start_).count();
    const double fraction = double(done_) / double(total_);
    const int decile = int(fraction * 10.0);
    if (done_ >= total_) final_draw = true;
    if (tty_) {
        if (!final_draw && now - last_draw_ < std::chrono::milliseconds(100)) return;
    } else if (!final_draw && decile == last_decile_) {
        return;
    }
    last_draw_ = now;
    last_decile_ = decile;
    finished_ = done_ >= total_;
    const int width = 30;
    const int filled = int(fraction * width);
    std::string bar(size_t(filled), '#');
    bar.append(size_t(width - filled), '-');
    const double eta_s = done_ > 0 ? elapsed_s * double(total_ - done_) / double(done_) : 0.0;
    std::fprintf(stderr, "%s%s [%s] %zu/%zu  %.0f s elapsed, ~%.0f s left%s", tty_ ? "\r" : "",
                 label_.c_str(), bar.c_str(), done_, total_, elapsed_s, eta_s,
                 tty_ && !final_draw ? "" : "\n");
    std::fflush(stderr);
}

}  // namespace earshot::cli
