// Device discovery, device buffers, CUDA error checking.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/internal.h"
#include "util/error.h"

#include <fmt/format.h>

namespace fpq::cuda {
namespace detail {

void check(int err, const char* what) {
  if (err == cudaSuccess) return;
  const auto e = static_cast<cudaError_t>(err);
  fail("CUDA error in {}: {} ({})", what, cudaGetErrorName(e), cudaGetErrorString(e));
}

void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail("CUDA kernel launch {} failed: {} ({})", kernel, cudaGetErrorName(e), cudaGetErrorString(e));
}

void fail_message(const char* what) { fail("{}", what); }

// One buffer per (device, stream): launches on one stream run in order, so they can share it; launches on
// two streams may overlap, so they never do (cudaStreamPerThread names another stream in every host thread). Replaced (stream-ordered free, allocation and zeroing) when a
// launch needs more. Under stream capture a graph keeps the pointers it captured, so a cached buffer that a
// later call replaces would leave the graph with freed memory: captures get their own allocation.
SplitScratch split_scratch(CUstream_st* stream, size_t counter_bytes, size_t ws_bytes) {
  SplitScratch r;
  auto carve = [&](size_t counters) {
    r.counters = reinterpret_cast<unsigned*>(r.mem);
    r.ws = reinterpret_cast<float*>(r.mem + counters);
    return r;
  };
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(stream, &cap), "cudaStreamIsCapturing");
  void* mem = nullptr;
  if (cap != cudaStreamCaptureStatusNone) {
    check(cudaMallocAsync(&mem, counter_bytes + ws_bytes, stream), "cudaMallocAsync");
    check(cudaMemsetAsync(mem, 0, counter_bytes, stream), "cudaMemsetAsync");
    r.mem = static_cast<uint8_t*>(mem);
    r.owned = true;
    return carve(counter_bytes);
  }
  struct Buffer {
    int device;
    CUstream_st* stream;
    std::thread::id thread;
    uint8_t* mem;
    size_t counter_bytes, ws_bytes;
  };
  static std::mutex mu;
  static std::vector<Buffer> buffers;
  const int dev = current_device();
  std::lock_guard<std::mutex> lock(mu);
  const std::thread::id thread = stream == cudaStreamPerThread ? std::this_thread::get_id() : std::thread::id{};
  Buffer* b = nullptr;
  for (Buffer& x : buffers)
    if (x.device == dev && x.stream == stream && x.thread == thread) b = &x;
  if (b == nullptr) b = &buffers.emplace_back(Buffer{dev, stream, thread, nullptr, 0, 0});
  if (b->counter_bytes < counter_bytes || b->ws_bytes < ws_bytes) {
    if (b->mem != nullptr) check(cudaFreeAsync(b->mem, stream), "cudaFreeAsync");
    b->counter_bytes = std::max(b->counter_bytes, counter_bytes);
    b->ws_bytes = std::max(b->ws_bytes, ws_bytes);
    check(cudaMallocAsync(&mem, b->counter_bytes + b->ws_bytes, stream), "cudaMallocAsync");
    b->mem = static_cast<uint8_t*>(mem);
    check(cudaMemsetAsync(b->mem, 0, b->counter_bytes, stream), "cudaMemsetAsync");
  }
  r.mem = b->mem;
  return carve(b->counter_bytes);  // partial sums after all the counters, not after this launch's
}

int current_device() {
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  return dev;
}

std::string env_choice(const char* name, std::initializer_list<const char*> allowed) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return {};
  std::string list;
  for (const char* a : allowed) {
    if (std::string(v) == a) return v;
    list += list.empty() ? a : std::string(", ") + a;
  }
  fail_message(fmt::format("{}={}: unknown value (expected one of: {})", name, v, list).c_str());
}

int sm_count() {
  // Per device (the launch shapes of a process that drives two kinds of GPU must follow the current one).
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return 132;
  }
  constexpr int kDevices = 64;
  static std::atomic<int> counts[kDevices];
  if (dev >= 0 && dev < kDevices)
    if (const int c = counts[dev].load(std::memory_order_relaxed); c > 0) return c;
  int count = 0;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || count <= 0) {
    cudaGetLastError();
    count = 132;
  }
  if (dev >= 0 && dev < kDevices) counts[dev].store(count, std::memory_order_relaxed);
  return count;
}

// Defined in act_quant.cu: loads the module's kernels (cudaFuncGetAttributes) and returns the error code.
int probe_kernel_image();

}  // namespace detail

bool cuda_available(std::string* reason) {
  auto say = [&](std::string r) {
    if (reason) *reason = std::move(r);
    return false;
  };
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return say(fmt::format("no usable CUDA driver or device ({}: {})", cudaGetErrorName(e), cudaGetErrorString(e)));
  }
  if (count == 0) return say("no CUDA device visible");
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    cudaGetLastError();
    return say("cannot read the CUDA device's properties");
  }
  if (!(prop.major == 9 && prop.minor == 0))
    return say(fmt::format("fpq's CUDA kernels are built for sm_90a (Hopper: H100/H200); device {} is {} (sm_{}{})", dev,
                           prop.name, prop.major, prop.minor));
  const int pe = detail::probe_kernel_image();
  if (pe != cudaSuccess) {
    cudaGetLastError();
    return say(fmt::format("the CUDA kernels cannot load on {}: {}", prop.name,
                           cudaGetErrorString(static_cast<cudaError_t>(pe))));
  }
  if (reason) reason->clear();
  return true;
}

std::string device_description() {
  std::string why;
  if (!cuda_available(&why)) return {};
  int dev = 0, driver = 0;
  cudaDeviceProp prop{};
  cudaGetDevice(&dev);
  cudaGetDeviceProperties(&prop, dev);
  cudaDriverGetVersion(&driver);
  return fmt::format("{}, sm_{}{}, {} SMs, {:.0f} GiB, driver {}.{}", prop.name, prop.major, prop.minor,
                     prop.multiProcessorCount, double(prop.totalGlobalMem) / (1 << 30), driver / 1000,
                     (driver % 1000) / 10);
}

int dtype_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

DeviceBuffer::DeviceBuffer(size_t bytes) { reset(bytes); }
DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}
DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
  o.ptr_ = nullptr;
  o.bytes_ = 0;
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}
void DeviceBuffer::reset(size_t bytes) {
  if (ptr_) {
    detail::check(cudaFree(ptr_), "cudaFree");
    ptr_ = nullptr;
    bytes_ = 0;
  }
  if (bytes > 0) {
    detail::check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
    bytes_ = bytes;
  }
}
void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  if (offset + bytes > bytes_) fail("DeviceBuffer::upload: {} bytes at {} exceed the buffer's {}", bytes, offset, bytes_);
  if (bytes) detail::check(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}
void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  if (offset + bytes > bytes_) fail("DeviceBuffer::download: {} bytes at {} exceed the buffer's {}", bytes, offset, bytes_);
  if (bytes) detail::check(cudaMemcpy(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}
void DeviceBuffer::fill_bytes(uint8_t value) {
  if (bytes_) detail::check(cudaMemset(ptr_, value, bytes_), "cudaMemset");
  detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

DeviceBuffer to_device(const void* host, size_t bytes) {
  DeviceBuffer b(bytes);
  b.upload(host, bytes);
  return b;
}

void synchronize() { detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

}  // namespace fpq::cuda
