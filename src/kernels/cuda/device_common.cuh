#pragma once
// Device-side ports of fpq's reference numerics (src/formats): element encode/decode, scale encode/decode,
// half-precision conversions. Every operation that the CPU reference rounds is written with an explicit
// round-to-nearest intrinsic (__fmul_rn, __fadd_rn, __fdiv_rn), so nvcc's FMA contraction cannot change a
// result, and the results are bit-identical to the CPU's.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/internal.h"

namespace fpq::cuda::detail {

// Programmatic dependent launch (sm_90). A kernel launched with the programmatic-serialization attribute may
// start before the previous kernel in its stream has finished: griddep_wait() blocks until that kernel has
// completed and its memory is visible (a no-op for a normal launch). griddep_launch_dependents() lets the next
// such kernel start launching (implicit at exit otherwise).
__device__ __forceinline__ void griddep_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void griddep_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" :::); }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared without passing through registers (pred false: zero-fill, nothing read).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool pred = true) {
  const int sz = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(sz) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// kernel<<<grid, block, smem, stream>>>(args...), with programmatic dependent launch when `programmatic` and in
// thread-block clusters of `cluster` CTAs unless that is 1 x 1 x 1.
template <typename... KArgs, typename... Args>
cudaError_t launch_kernel_clustered(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                    bool programmatic, dim3 cluster, Args... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  int n = 0;
  if (programmatic) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  if (cluster.x * cluster.y * cluster.z > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster.x;
    attr[n].val.clusterDim.y = cluster.y;
    attr[n].val.clusterDim.z = cluster.z;
    ++n;
  }
  cfg.attrs = attr;
  cfg.numAttrs = unsigned(n);
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}
template <typename... KArgs, typename... Args>
cudaError_t launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          bool programmatic, Args... args) {
  return launch_kernel_clustered(kernel, grid, block, smem, stream, programmatic, dim3(1, 1, 1), args...);
}

// How many clusters of `cluster` CTAs of this kernel (block threads, smem bytes of dynamic shared memory, already
// allowed for the kernel) the device runs at once; 0 where it runs none or refuses the query (no error is left).
template <typename... KArgs>
int cluster_capacity(void (*kernel)(KArgs...), dim3 block, size_t smem, dim3 cluster) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = cluster;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute a[1];
  a[0].id = cudaLaunchAttributeClusterDimension;
  a[0].val.clusterDim.x = cluster.x;
  a[0].val.clusterDim.y = cluster.y;
  a[0].val.clusterDim.z = cluster.z;
  cfg.attrs = a;
  cfg.numAttrs = 1;
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, kernel, &cfg) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n > 0 ? n : 0;
}
// Whether the device can run at least one such cluster at once.
template <typename... KArgs>
bool cluster_fits(void (*kernel)(KArgs...), dim3 block, size_t smem, dim3 cluster) {
  return cluster_capacity(kernel, block, smem, cluster) > 0;
}

// All threads of the thread-block cluster (a CTA barrier in a launch without clusters): writes to shared memory
// before it are visible to every CTA of the cluster after it.
__device__ __forceinline__ void cluster_barrier() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// A float of CTA `rank`'s shared memory at this CTA's shared-memory address `addr` (distributed shared memory).
__device__ __forceinline__ float load_cluster_f32(uint32_t addr, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(addr), "r"(rank));
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
  return v;
}

// y[o] = v as the output type (kF32, kBF16 or kF16; round to nearest).
__device__ __forceinline__ void store_typed(void* y, int ytype, int64_t o, float v) {
  if (ytype == kF32) static_cast<float*>(y)[o] = v;
  else if (ytype == kBF16) static_cast<__nv_bfloat16*>(y)[o] = __float2bfloat16_rn(v);
  else static_cast<__half*>(y)[o] = __float2half_rn(v);
}

__device__ __forceinline__ float pow2f(int e) {  // exact 2^e for -149 <= e <= 127
  if (e >= -126) return __uint_as_float(uint32_t(e + 127) << 23);
  return __uint_as_float(1u << (e + 149));
}

__device__ __forceinline__ int floor_log2_dev(float x) {
  const uint32_t a = __float_as_uint(x) & 0x7FFFFFFFu;
  if (a >= 0x00800000u) return int(a >> 23) - 127;
  return (31 - __clz(a)) - 149;
}

__device__ __forceinline__ bool is_finite_dev(float x) { return (__float_as_uint(x) & 0x7F800000u) != 0x7F800000u; }

__device__ __forceinline__ uint32_t nan_code_dev(const ElemDesc& t, bool negative) {
  if (t.is_int || t.specials == 0) return 0;
  const uint32_t sign = negative ? 1u << (t.ebits + t.mbits) : 0u;
  if (t.specials == 1) return sign | ((1u << (t.ebits + t.mbits)) - 1u);
  return sign | (((1u << t.ebits) - 1u) << t.mbits) | (1u << (t.mbits - 1));
}

// ElementType::encode (saturating round-to-nearest-even).
__device__ __forceinline__ uint32_t encode_dev(const ElemDesc& t, float x) {
  if (t.is_int) {
    if (x != x) return 0;
    const float v = __fmul_rn(x, pow2f(t.mbits));
    float q = rintf(v);
    if (!(q >= float(t.qmin))) q = float(t.qmin);
    if (q > float(t.qmax)) q = float(t.qmax);
    return uint32_t(int(q)) & ((1u << t.bits) - 1u);
  }
  const uint32_t u = __float_as_uint(x);
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t sign = (t.is_signed && (u >> 31)) ? 1u << (t.ebits + t.mbits) : 0u;
  if (a > 0x7F800000u) return nan_code_dev(t, u >> 31);
  uint32_t mag;
  if (a >= t.max_f32) {
    mag = t.max_magnitude;
  } else {
    const int emin = 1 - t.bias;
    const int e = int(a >> 23) - 127;
    if (e < emin) {
      const float v = __fmul_rn(__uint_as_float(a), pow2f(t.mbits - emin));
      mag = uint32_t(rintf(v));
    } else {
      const int shift = 23 - t.mbits;
      const uint32_t r = a + ((1u << (shift - 1)) - 1u) + ((a >> shift) & 1u);
      mag = (r >> shift) - (uint32_t(127 - t.bias) << t.mbits);
    }
    if (mag > t.max_magnitude) mag = t.max_magnitude;
  }
  return sign | mag;
}

// ElementType::decode (exact).
__device__ __forceinline__ float decode_dev(const ElemDesc& t, uint32_t c) {
  c &= (1u << t.bits) - 1u;
  if (t.is_int) {
    int v = int(c);
    if (t.is_signed && ((c >> (t.bits - 1)) & 1u)) v -= 1 << t.bits;
    return __fmul_rn(float(v), pow2f(-t.mbits));
  }
  const uint32_t all_ones = (1u << (t.ebits + t.mbits)) - 1u;
  const bool neg = t.is_signed && ((c >> (t.ebits + t.mbits)) & 1u);
  const uint32_t mag = c & all_ones;
  const uint32_t e = mag >> t.mbits, m = mag & ((1u << t.mbits) - 1u);
  float v;
  if (t.specials == 2 && e == (1u << t.ebits) - 1u)
    v = m == 0 ? __uint_as_float(0x7F800000u) : __uint_as_float(0x7FC00000u);
  else if (t.specials == 1 && mag == all_ones)
    v = __uint_as_float(0x7FC00000u);
  else if (e == 0)
    v = __fmul_rn(float(m), pow2f(1 - t.bias - t.mbits));
  else
    v = __uint_as_float((uint32_t(int(e) - t.bias + 127) << 23) | (m << (23 - t.mbits)));
  return neg ? -v : v;
}

// util/half.h ports (bit-exact, NaN payloads included).
__device__ __forceinline__ uint16_t f32_to_bf16_dev(float x) {
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x0040u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
__device__ __forceinline__ float bf16_to_f32_dev(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

__device__ __forceinline__ float f16_to_f32_dev(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return __uint_as_float(sign | 0x7F800000u | (man << 13));
  if (exp == 0) {
    const float v = __fmul_rn(float(man), 0x1p-24f);
    return sign ? -v : v;
  }
  return __uint_as_float(sign | ((exp + 112u) << 23) | (man << 13));
}

__device__ __forceinline__ uint16_t f32_to_f16_dev(float x) {
  const uint32_t u = __float_as_uint(x);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return uint16_t(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return uint16_t(sign | 0x7C00u);
  if (a >= 0x38800000u) {
    uint32_t t = a + 0xFFFu + ((a >> 13) & 1u);
    t -= (112u << 23);
    return uint16_t(sign | (t >> 13));
  }
  const float v = __fmul_rn(__uint_as_float(a), 0x1p24f);
  uint32_t q = uint32_t(v);
  const float rem = __fsub_rn(v, float(q));
  if (rem > 0.5f || (rem == 0.5f && (q & 1u))) ++q;
  return uint16_t(sign | q);
}

__device__ __forceinline__ uint8_t e8m0_encode_dev(float x) {
  const uint32_t u = __float_as_uint(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0xFF;
  if (!(x > 0)) return 0;
  if (u >= 0x7F000000u) return 254;
  const uint32_t e = u >> 23;
  if (e == 0) return u >= 0x00600000u ? 1 : 0;
  return uint8_t(e + ((u & 0x00400000u) ? 1u : 0u));
}

__device__ __forceinline__ float e8m0_decode_dev(uint32_t code) {
  if (code == 0xFF) return __uint_as_float(0x7FC00000u);
  if (code == 0) return __uint_as_float(0x00400000u);
  return __uint_as_float(code << 23);
}

// The E4M3 element (Fn): bias 7, max 448 (code 0x7E).
__device__ __forceinline__ ElemDesc e4m3_desc() {
  ElemDesc t;
  t.is_int = 0;
  t.bits = 8;
  t.ebits = 4;
  t.mbits = 3;
  t.bias = 7;
  t.is_signed = 1;
  t.specials = 1;
  t.max_magnitude = 0x7E;
  t.max_f32 = 0x43E00000u;  // 448
  t.emax = 8;
  return t;
}

// encode_scale: writes the scale's bytes (little endian) into out[0..sb).
__device__ __forceinline__ void encode_scale_dev(int s, float v, uint8_t* out) {
  switch (s) {
    case kScaleE8M0: out[0] = e8m0_encode_dev(v); return;
    case kScaleE4M3: out[0] = uint8_t(encode_dev(e4m3_desc(), v)); return;
    case kScaleF16: {
      const uint16_t h = f32_to_f16_dev(v != v ? v : fminf(v, 65504.0f));
      out[0] = uint8_t(h);
      out[1] = uint8_t(h >> 8);
      return;
    }
    case kScaleBF16: {
      uint16_t h = f32_to_bf16_dev(v);
      if ((h & 0x7FFFu) == 0x7F80u) h = uint16_t((h & 0x8000u) | 0x7F7Fu);
      out[0] = uint8_t(h);
      out[1] = uint8_t(h >> 8);
      return;
    }
    case kScaleF32: {
      const uint32_t b = __float_as_uint(v);
      out[0] = uint8_t(b);
      out[1] = uint8_t(b >> 8);
      out[2] = uint8_t(b >> 16);
      out[3] = uint8_t(b >> 24);
      return;
    }
    default: return;
  }
}

__device__ __forceinline__ float decode_scale_bytes(int s, const uint8_t* p) {
  switch (s) {
    case kScaleE8M0: return e8m0_decode_dev(p[0]);
    case kScaleE4M3: return decode_dev(e4m3_desc(), p[0]);
    case kScaleF16: return f16_to_f32_dev(uint16_t(p[0] | (p[1] << 8)));
    case kScaleBF16: return bf16_to_f32_dev(uint16_t(p[0] | (p[1] << 8)));
    case kScaleF32: return __uint_as_float(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
                                           (uint32_t(p[3]) << 24));
    default: return 1.0f;
  }
}

// Decodes a scale held in the low bits of `raw` (scale bytes little endian).
__device__ __forceinline__ float decode_scale_raw(int s, uint32_t raw) {
  switch (s) {
    case kScaleE8M0: return e8m0_decode_dev(raw & 0xFFu);
    case kScaleE4M3: return decode_dev(e4m3_desc(), raw & 0xFFu);
    case kScaleF16: return f16_to_f32_dev(uint16_t(raw));
    case kScaleBF16: return bf16_to_f32_dev(uint16_t(raw));
    case kScaleF32: return __uint_as_float(raw);
    default: return 1.0f;
  }
}

__device__ __forceinline__ float load_as_float(const void* x, int type, int64_t i) {
  if (type == kBF16) return bf16_to_f32_dev(static_cast<const uint16_t*>(x)[i]);
  if (type == kF16) return f16_to_f32_dev(static_cast<const uint16_t*>(x)[i]);
  return static_cast<const float*>(x)[i];
}

}  // namespace fpq::cuda::detail
