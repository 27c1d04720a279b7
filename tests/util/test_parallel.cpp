// The thread pool: every index once, exceptions carried to the caller, and one CPU per thread when pinned.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "util/parallel.h"

namespace {

int allowed_cpu_count() {
  cpu_set_t s;
  CPU_ZERO(&s);
  sched_getaffinity(0, sizeof s, &s);
  return CPU_COUNT(&s);
}

// Read before main, while no pool thread (the caller included) is pinned yet.
const int kAllowedCpus = allowed_cpu_count();

int own_cpu_count() {
  cpu_set_t s;
  CPU_ZERO(&s);
  pthread_getaffinity_np(pthread_self(), sizeof s, &s);
  return CPU_COUNT(&s);
}

// Runs `threads` chunks that wait for each other (so each runs on its own thread) and returns each chunk's
// (allowed-CPU count, CPU it ran on); fails rather than hangs when the threads never all arrive.
std::vector<std::pair<int, int>> placement(int threads) {
  std::vector<std::pair<int, int>> out(size_t(threads), {0, -1});
  std::atomic<int> arrived{0};
  std::atomic<bool> timed_out{false};
  fpq::parallel_for(threads, 1, [&](int64_t a, int64_t) {
    ++arrived;
    const auto t0 = std::chrono::steady_clock::now();
    while (arrived.load() < threads)
      if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(10)) {
        timed_out = true;
        break;
      }
    out[size_t(a)] = {own_cpu_count(), sched_getcpu()};
  });
  EXPECT_FALSE(timed_out) << "the chunks did not run on " << threads << " threads at once";
  return out;
}

class Parallel : public ::testing::Test {
 protected:
  int saved_ = fpq::num_threads();
  void TearDown() override {
    unsetenv("FPQ_PIN_THREADS");
    fpq::set_num_threads(saved_);
  }
};

TEST_F(Parallel, EveryIndexOnceForAnyThreadCountAndGrain) {
  for (int threads : {1, 2, 3, 5})
    for (int64_t n : {1, 7, 64, 1000})
      for (int64_t grain : {1, 3, 64, 5000}) {
        fpq::set_num_threads(threads);
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        fpq::parallel_for(n, grain, [&](int64_t a, int64_t b) {
          EXPECT_LE(b - a, grain);
          for (int64_t i = a; i < b; ++i) ++hits[size_t(i)];
        });
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[size_t(i)].load(), 1) << "index " << i << " of " << n << ", grain " << grain << ", "
                                                << threads << " threads";
      }
}

TEST_F(Parallel, RethrowsTheChunksException) {
  fpq::set_num_threads(2);
  std::atomic<int> ran{0};
  EXPECT_THROW(fpq::parallel_for(100, 1,
                                 [&](int64_t a, int64_t) {
                                   ++ran;
                                   if (a == 37) throw std::runtime_error("chunk 37");
                                 }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 100);  // the other chunks still ran
  int sum = 0;                 // and the pool still works
  std::mutex m;
  fpq::parallel_for(10, 1, [&](int64_t a, int64_t) {
    std::lock_guard<std::mutex> lk(m);
    sum += int(a);
  });
  EXPECT_EQ(sum, 45);
}

TEST_F(Parallel, PinsOneThreadPerCpuAndUnpinsWhenTold) {
  const int cpus = kAllowedCpus;
  if (cpus < 2) GTEST_SKIP() << "one CPU allowed: nothing to pin";
  unsetenv("FPQ_PIN_THREADS");  // (the default, whatever the environment says)
  fpq::set_num_threads(2);
  ASSERT_TRUE(fpq::threads_pinned());
  const auto pinned = placement(2);
  std::set<int> seen;
  for (const auto& [count, cpu] : pinned) {
    EXPECT_EQ(count, 1) << "a pool thread may run on " << count << " CPUs";
    seen.insert(cpu);
  }
  EXPECT_EQ(seen.size(), 2u) << "both threads ran on CPU " << *seen.begin();

  // More threads than CPUs: no pinning, and the caller gets the process's CPUs back.
  fpq::set_num_threads(cpus + 1);
  EXPECT_FALSE(fpq::threads_pinned());
  for (const auto& [count, cpu] : placement(cpus + 1)) EXPECT_EQ(count, cpus);

  setenv("FPQ_PIN_THREADS", "0", 1);
  fpq::set_num_threads(2);
  EXPECT_FALSE(fpq::threads_pinned());
  for (const auto& [count, cpu] : placement(2)) EXPECT_EQ(count, cpus);
}

}  // namespace
