// Counts the heap allocations a program makes through operator new (all
// threads). Linking alloc_counter.cc replaces the global operator new and
// delete of the program, so it goes into a benchmark or test binary of its
// own, never into the server.
#ifndef VIGIL_BENCH_ALLOC_COUNTER_H_
#define VIGIL_BENCH_ALLOC_COUNTER_H_

#include <cstdint>

namespace vigil::bench {

// Allocations so far.
int64_t Allocations();

}  // namespace vigil::bench

#endif  // VIGIL_BENCH_ALLOC_COUNTER_H_
