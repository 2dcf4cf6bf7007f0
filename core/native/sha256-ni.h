// SHA-256's constants and its compression function with the x86 SHA extensions (SHA-NI), shared by
// the two addons that hash: core/native/sha256.cc (validation's hashes) and mining/native/sha256d.cc
// (the miner's header hashes). Only the functions marked with the target attribute use SHA-NI;
// callers run them only when cpuHasShaNi() says the CPU has it, so an addon that includes this
// loads on any CPU.
#pragma once
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace sha256ni {

inline constexpr uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
inline constexpr uint32_t IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#if defined(__x86_64__)
inline bool cpuHasShaNi() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return ssse3 && sse41 && ((b >> 29) & 1);
}
#else
inline bool cpuHasShaNi() { return false; }
#endif

inline uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

#if defined(__x86_64__)
// N compressions side by side, each of `s[j]` (A..H) with the sixteen message words `w[j]`
// (numeric values, W0 first). Independent lanes interleaved hide the latency of the round
// instruction, which otherwise bounds one compression: on this project's machine (AMD EPYC)
// scanRange ran 16.5 M nonces/s with two lanes, 20.8 M with four and 11.9 M with eight (the
// sixteen xmm registers spill).
template <int N>
__attribute__((target("sha,sse4.1,ssse3"))) inline void compress(uint32_t (*s)[8], const uint32_t (*w)[16]) {
  __m128i st0[N], st1[N], abef[N], cdgh[N], m[N][4];
#pragma GCC unroll 4
  for (int j = 0; j < N; j++) {
    __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&s[j][0]));
    __m128i t1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&s[j][4]));
    tmp = _mm_shuffle_epi32(tmp, 0xB1);
    t1 = _mm_shuffle_epi32(t1, 0x1B);
    st0[j] = abef[j] = _mm_alignr_epi8(tmp, t1, 8);  // the A, B, E, F lanes the instructions take
    st1[j] = cdgh[j] = _mm_blend_epi16(t1, tmp, 0xF0);  // C, D, G, H
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) {
    const __m128i k = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&K[4 * i]));
#pragma GCC unroll 4
    for (int j = 0; j < N; j++) {
      if (i < 4) {
        m[j][i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&w[j][4 * i]));
      } else {
        // W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four words at a time: m[i & 3]
        // holds the group four back, m[(i + 1) & 3] three back, and so on
        __m128i x = _mm_sha256msg1_epu32(m[j][i & 3], m[j][(i + 1) & 3]);
        x = _mm_add_epi32(x, _mm_alignr_epi8(m[j][(i + 3) & 3], m[j][(i + 2) & 3], 4));
        m[j][i & 3] = _mm_sha256msg2_epu32(x, m[j][(i + 3) & 3]);
      }
      __m128i wk = _mm_add_epi32(m[j][i & 3], k);
      st1[j] = _mm_sha256rnds2_epu32(st1[j], st0[j], wk);
      wk = _mm_shuffle_epi32(wk, 0x0E);
      st0[j] = _mm_sha256rnds2_epu32(st0[j], st1[j], wk);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < N; j++) {
    __m128i a = _mm_add_epi32(st0[j], abef[j]);
    __m128i b = _mm_add_epi32(st1[j], cdgh[j]);
    __m128i tmp = _mm_shuffle_epi32(a, 0x1B);
    b = _mm_shuffle_epi32(b, 0xB1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&s[j][0]), _mm_blend_epi16(tmp, b, 0xF0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&s[j][4]), _mm_alignr_epi8(b, tmp, 8));
  }
}
#endif

}  // namespace sha256ni
