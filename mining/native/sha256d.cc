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
#include "../../core/native/sha256-ni.h"

namespace {

using namespace sha256ni;

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
