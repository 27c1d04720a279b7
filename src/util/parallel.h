#pragma once
// A small fixed thread pool. parallel_for splits [0, n) into chunks that do not depend on the thread count,
// so any computation whose per-chunk work is deterministic gives bit-identical results for 1 or N threads.
#include <cstdint>
#include <functional>

namespace fpq {

// Number of worker threads (including the caller). Default: FPQ_NUM_THREADS, else hardware concurrency.
int num_threads();
// Whether the pool's threads are pinned, one per CPU of the process's affinity set: the caller (from its first
// parallel_for) to the first, worker i to the i-th. On by default where there are at least as many CPUs as
// threads; FPQ_PIN_THREADS=0 turns it off.
bool threads_pinned();
// Changes the pool size (>= 1). Not safe while a parallel_for is running.
void set_num_threads(int n);

// Calls fn(begin, end) for consecutive chunks of [0, n), each at most `grain` long, possibly concurrently.
// Exceptions thrown by fn are rethrown (the first one) after all chunks finish.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace fpq
