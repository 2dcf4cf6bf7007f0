// Double SHA-256 of 80-byte block headers with the x86 SHA extensions (SHA-NI), as a Node-API
// addon: the native hasher of mining/native-hasher.ts. tools/build-native.ts compiles it at
// install where g++ and Node's headers are present; without it the miner keeps the WebAssembly
// hasher. Only the functions marked with the target attribute use SHA-NI, and they run only when
// CPUID says the CPU has it (`supported()`), so the addon loads on any x86-64.
//
// Per nonce: the first 64 header bytes are compressed once per call (the midstate); each nonce
// costs the second block of the first hash and the one block of the second hash. The hash meets
// the target when, read as a little-endian 256-bit number, it is at most the target (as
// consensus/pow.ts hashMeetsTargetBytes).
#include <node_api.h>
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

namespace {

const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
const uint32_t IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

bool cpuHasShaNi() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return ssse3 && sse41 && ((b >> 29) & 1);
}

inline uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

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

struct Midstate {
  uint32_t state[8];
  uint32_t block2[16];  // the second block, word 3 (the nonce) set per nonce
};

__attribute__((target("sha,sse4.1,ssse3"))) void prepare(Midstate& ms, const uint8_t* header) {
  uint32_t w[1][16];
  for (int i = 0; i < 16; i++) w[0][i] = be32(header + 4 * i);
  memcpy(ms.state, IV, sizeof IV);
  compress<1>(&ms.state, w);
  ms.block2[0] = be32(header + 64);
  ms.block2[1] = be32(header + 68);
  ms.block2[2] = be32(header + 72);
  ms.block2[3] = 0;
  ms.block2[4] = 0x80000000u;
  for (int i = 5; i < 15; i++) ms.block2[i] = 0;
  ms.block2[15] = 640;  // 80 bytes, in bits
}

// The final states of sha256d(header with nonce[j]) for N nonces; the digest bytes are the
// words big-endian.
template <int N>
__attribute__((target("sha,sse4.1,ssse3"))) inline void hashStates(const Midstate& ms, const uint32_t* nonce, uint32_t (*out)[8]) {
  uint32_t s[N][8], w[N][16];
  for (int j = 0; j < N; j++) {
    memcpy(s[j], ms.state, sizeof s[j]);
    memcpy(w[j], ms.block2, sizeof w[j]);
    w[j][3] = __builtin_bswap32(nonce[j]);  // the header stores it little-endian
  }
  compress<N>(s, w);
  for (int j = 0; j < N; j++) {
    for (int i = 0; i < 8; i++) w[j][i] = s[j][i];
    w[j][8] = 0x80000000u;
    for (int i = 9; i < 15; i++) w[j][i] = 0;
    w[j][15] = 256;  // 32 bytes, in bits
    memcpy(out[j], IV, sizeof IV);
  }
  compress<N>(out, w);
}

bool meets(const uint32_t st[8], const uint8_t* targetLE) {
  // the digest's byte 31 is the little-endian number's most significant: the low byte of word 7
  for (int i = 31; i >= 0; i--) {
    const uint8_t h = uint8_t(st[i >> 2] >> (24 - 8 * (i & 3)));
    if (h != targetLE[i]) return h < targetLE[i];
  }
  return true;
}

// The first nonce of [start, start + n) (mod 2^32) whose hash meets the target, or -1. The most
// significant 32 bits of the little-endian hash are word 7 byte-swapped: comparing them alone
// settles all but about one nonce in 2^32.
__attribute__((target("sha,sse4.1,ssse3"))) int64_t scanRange(const Midstate& ms, uint32_t start, uint64_t n, const uint8_t* target) {
  const uint32_t top = uint32_t(target[28]) | (uint32_t(target[29]) << 8) | (uint32_t(target[30]) << 16) | (uint32_t(target[31]) << 24);
  uint32_t st[4][8];
  uint64_t i = 0;
  // four nonces at a time, checked in order; what is left, one by one
  for (; i + 4 <= n; i += 4) {
    const uint32_t nonces[4] = {uint32_t(start + i), uint32_t(start + i + 1), uint32_t(start + i + 2), uint32_t(start + i + 3)};
    hashStates<4>(ms, nonces, st);
    for (int j = 0; j < 4; j++) {
      const uint32_t h = __builtin_bswap32(st[j][7]);
      if (h < top || (h == top && meets(st[j], target))) return nonces[j];
    }
  }
  for (; i < n; i++) {
    const uint32_t nonce = uint32_t(start + i);
    hashStates<1>(ms, &nonce, st);
    const uint32_t h = __builtin_bswap32(st[0][7]);
    if (h < top || (h == top && meets(st[0], target))) return nonce;
  }
  return -1;
}

__attribute__((target("sha,sse4.1,ssse3"))) void hashOne(const Midstate& ms, uint32_t nonce, uint32_t (*out)[8]) { hashStates<1>(ms, &nonce, out); }

// ---- Node-API -----------------------------------------------------------------------------------

bool bytesArg(napi_env env, napi_value v, size_t want, uint8_t** data) {
  napi_typedarray_type type;
  size_t length;
  void* p;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, &length, &p, &ab, &offset) != napi_ok || type != napi_uint8_array || length != want) {
    napi_throw_type_error(env, nullptr, want == 80 ? "a header is a Uint8Array of 80 bytes" : "a hash or target is a Uint8Array of 32 bytes");
    return false;
  }
  *data = static_cast<uint8_t*>(p);
  return true;
}

napi_value Supported(napi_env env, napi_callback_info) {
  napi_value r;
  napi_get_boolean(env, cpuHasShaNi(), &r);
  return r;
}

// The call's arguments, the header (80 bytes, the first) and the 32-byte buffer (at `bytes32`)
// read; false, with a JavaScript error thrown, when the CPU lacks SHA-NI or an argument is missing
// or of the wrong kind.
template <size_t N>
bool callArgs(napi_env env, napi_callback_info info, napi_value (&argv)[N], size_t bytes32, uint8_t** header, uint8_t** buf32) {
  if (!cpuHasShaNi()) {
    napi_throw_error(env, nullptr, "this CPU has no SHA extensions");
    return false;
  }
  size_t argc = N;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < N) {
    napi_throw_type_error(env, nullptr, "missing arguments");
    return false;
  }
  return bytesArg(env, argv[0], 80, header) && bytesArg(env, argv[bytes32], 32, buf32);
}

// hashNonce(header80, nonce, out32)
napi_value HashNonce(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint8_t *header, *out;
  uint32_t nonce;
  if (!callArgs(env, info, argv, 2, &header, &out)) return nullptr;
  if (napi_get_value_uint32(env, argv[1], &nonce) != napi_ok) {
    napi_throw_type_error(env, nullptr, "the nonce is a number");
    return nullptr;
  }
  Midstate ms;
  prepare(ms, header);
  uint32_t st[1][8];
  hashOne(ms, nonce, st);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = uint8_t(st[0][i] >> 24);
    out[4 * i + 1] = uint8_t(st[0][i] >> 16);
    out[4 * i + 2] = uint8_t(st[0][i] >> 8);
    out[4 * i + 3] = uint8_t(st[0][i]);
  }
  return nullptr;
}

// scan(header80, startNonce, count, targetLE32): the first nonce of [start, start + count) (mod
// 2^32) whose hash meets the target, or -1
napi_value Scan(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *header, *target;
  uint32_t start;
  double count;
  if (!callArgs(env, info, argv, 3, &header, &target)) return nullptr;
  if (napi_get_value_uint32(env, argv[1], &start) != napi_ok || napi_get_value_double(env, argv[2], &count) != napi_ok || !(count >= 0 && count <= 4294967296.0)) {
    napi_throw_range_error(env, nullptr, "start is a nonce and count at most 2^32");
    return nullptr;
  }
  Midstate ms;
  prepare(ms, header);
  const double found = double(scanRange(ms, start, uint64_t(count), target));
  napi_value r;
  napi_create_double(env, found, &r);
  return r;
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"supported", nullptr, Supported, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"hashNonce", nullptr, HashNonce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scan", nullptr, Scan, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
