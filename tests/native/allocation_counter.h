// The global operator new of earshot_native_tests is replaced (tests/native/allocation_counter.cc;
// native only: the portable test binary must not replace it under Emscripten) to count every
// allocation and to see the largest single request, for tests that check what code allocates.
#pragma once

#include <atomic>
#include <cstddef>

namespace earshot {
namespace test {

// Every operator new call in this binary.
extern std::atomic<size_t> g_allocation_count;
// The largest single request (bytes) while g_track_largest_allocation is set.
extern std::atomic<bool> g_track_largest_allocation;
extern std::atomic<size_t> g_largest_allocation;

}  // namespace test
}  // namespace earshot
