#include "util/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>

namespace fpq {
namespace {

// The CPUs the process may run on, read once before any thread of ours is pinned (pinning the caller would
// otherwise shrink the set the next pool sees).
const std::vector<int>& allowed_cpus() {
  static const std::vector<int> cpus = [] {
    std::vector<int> v;
    cpu_set_t s;
    CPU_ZERO(&s);
    if (sched_getaffinity(0, sizeof s, &s) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &s)) v.push_back(c);
    return v;
  }();
  return cpus;
}

bool set_affinity(const std::vector<int>& cpus) {
  cpu_set_t s;
  CPU_ZERO(&s);
  for (int c : cpus) CPU_SET(c, &s);
  return pthread_setaffinity_np(pthread_self(), sizeof s, &s) == 0;
}

// Pinning is on unless FPQ_PIN_THREADS=0, and only where every thread gets a CPU of its own.
bool pinning_wanted(int threads) {
  const char* env = std::getenv("FPQ_PIN_THREADS");
  if (env && std::string(env) == "0") return false;
  return threads > 1 && threads <= int(allowed_cpus().size());
}

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return int(workers_.size()) + 1; }

  bool pinned() const { return pinned_; }

  void resize(int n) {
    stop();
    stopping_.store(false);
    n = std::max(1, n);
    // Each thread keeps one CPU: the caller the first allowed CPU, worker i the i-th. Unpinned, the guest
    // scheduler of a 2-vCPU VM stacked the woken worker onto the caller's CPU for 10-40 ms after every sleep
    // (a matrix-vector product ran at one thread's speed: 1.6 ms instead of 1.0 ms at 14336x4096 MXFP4).
    pinned_ = pinning_wanted(n);
    spin_ = n <= int(allowed_cpus().size());  // (oversubscribed, a spinning thread would hold a CPU others need)
    nworkers_ = n - 1;
    ++placement_;
    // New workers start from the current generation: a worker that took the generation of an earlier job for
    // a new one would count itself done twice and leave run() waiting forever.
    for (int i = 1; i < n; ++i)
      workers_.emplace_back([this, g = generation_.load(), i] {
        // Unpinned workers too set their CPUs: a thread inherits its creator's, which may be the pinned caller.
        set_affinity(pinned_ ? std::vector<int>{allowed_cpus()[size_t(i)]} : allowed_cpus());
        worker(g);
      });
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    if (!in_parallel_) place_caller();
    grain = std::max<int64_t>(1, grain);
    const int64_t chunks = (n + grain - 1) / grain;
    if (chunks == 1 || workers_.empty() || in_parallel_) {
      for (int64_t c = 0; c < chunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
      return;
    }
    std::unique_lock<std::mutex> job_lock(job_mutex_);  // one parallel region at a time
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    chunks_ = chunks;
    next_.store(0);
    done_.store(0);
    error_ = nullptr;
    {
      // (under the lock: a worker going to sleep either sees the new generation or is woken)
      std::lock_guard<std::mutex> lk(m_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work();
    const int workers = nworkers_;
    if (!spin_until([&] { return done_.load(std::memory_order_acquire) == workers; })) {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, [&] { return done_.load(std::memory_order_acquire) == workers; });
    }
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Pins the calling thread to the first allowed CPU while the pool pins, and gives it back the process's CPUs
  // when the pool stops pinning; done once per thread and pool layout (a system call, not one per region).
  void place_caller() {
    if (caller_placement_ == placement_) return;
    caller_placement_ = placement_;
    if (pinned_) {
      set_affinity({allowed_cpus()[0]});
      caller_pinned_ = true;
    } else if (caller_pinned_) {
      set_affinity(allowed_cpus());
      caller_pinned_ = false;
    }
  }

  void work() {
    in_parallel_ = true;
    for (;;) {
      const int64_t c = next_.fetch_add(1);
      if (c >= chunks_) break;
      try {
        (*fn_)(c * grain_, std::min(n_, (c + 1) * grain_));
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
    }
    in_parallel_ = false;
  }

  void worker(uint64_t seen) {
    for (;;) {
      // Spin a little before sleeping: in generation the regions come every few microseconds, and a wake-up
      // through the condition variable cost ~13 µs per region on the 2-vCPU VM (~1 µs spinning).
      if (!spin_until([&] { return stopping_.load() || generation_.load(std::memory_order_acquire) != seen; })) {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stopping_.load() || generation_.load(std::memory_order_acquire) != seen; });
      }
      if (stopping_) return;
      seen = generation_.load(std::memory_order_acquire);
      work();
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == nworkers_) {
        std::lock_guard<std::mutex> lk(m_);  // (the caller checks done_ under it before it sleeps)
        done_cv_.notify_one();
      }
    }
  }

  // Polls `ready` for up to kSpinSeconds; false when it never became true (then block on a condition variable).
  template <class F>
  bool spin_until(F&& ready) const {
    if (!spin_) return ready();
    constexpr double kSpinSeconds = 200e-6;
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > kSpinSeconds) return ready();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stopping_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex m_, job_mutex_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1, chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> done_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  bool pinned_ = false;
  bool spin_ = false;
  int nworkers_ = 0;
  uint64_t placement_ = 0;  // bumped by every resize: callers re-check their placement
  std::exception_ptr error_;
  static thread_local bool in_parallel_;
  static thread_local uint64_t caller_placement_;
  static thread_local bool caller_pinned_;
};

thread_local bool Pool::in_parallel_ = false;
thread_local uint64_t Pool::caller_placement_ = 0;
thread_local bool Pool::caller_pinned_ = false;

int default_threads() {
  if (const char* env = std::getenv("FPQ_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }
bool threads_pinned() { return pool().pinned(); }
void set_num_threads(int n) { pool().resize(std::max(1, n)); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

}  // namespace fpq
