// Replaces the global operator new / delete of earshot_native_tests: see allocation_counter.h.
#include "tests/native/allocation_counter.h"

#include <cstdlib>
#include <new>

namespace earshot {
namespace test {
std::atomic<size_t> g_allocation_count{0};
std::atomic<bool> g_track_largest_allocation{false};
std::atomic<size_t> g_largest_allocation{0};
}  // namespace test
}  // namespace earshot

void* operator new(size_t bytes) {
    using namespace earshot::test;  // NOLINT: the counters
    ++g_allocation_count;
    if (g_track_largest_allocation.load(std::memory_order_relaxed)) {
        size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
        while (bytes > seen && !g_largest_allocation.compare_exchange_weak(seen, bytes)) {
        }
    }
    if (void* p = std::malloc(bytes ? bytes : 1)) return p;
    throw std::bad_alloc();
}
// Every form the replaced delete frees: the nothrow and array forms go through the one above
// (the library's temporary buffers, e.g. std::stable_sort's, use the nothrow form).
void* operator new(size_t bytes, const std::nothrow_t&) noexcept {
    try {
        return operator new(bytes);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](size_t bytes) { return operator new(bytes); }
void* operator new[](size_t bytes, const std::nothrow_t&) noexcept {
    return operator new(bytes, std::nothrow);
}
// GCC sees the replaced operator new's malloc and warns about free() in the matching delete:
// both are replaced together here, so the pair is consistent.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop
