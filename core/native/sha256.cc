// SHA-256 for validation's short inputs (record ids, tagged digests, Merkle nodes, addresses), as
// a Node-API addon that core/hash.ts uses when it loads. node:crypto's one-shot hash costs about
// 1.4 us a call here whatever the input, most of it the call's own machinery; a block of 200
// records takes over a thousand such hashes. This one hashes bytes the caller has already written
// into a buffer bound once and writes the digest into a second bound buffer, so a call passes one
// number and allocates nothing. With the SHA extensions (SHA-NI) where the CPU has
// them, else portable C. tools/build-native.ts builds it at install; without it core/hash.ts
// keeps node:crypto.
#include <node_api.h>
#include "sha256-ni.h"

namespace {

using namespace sha256ni;

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// One compression of `s` with the sixteen message words `w`, in plain C.
void compressPortable(uint32_t s[8], const uint32_t w16[16]) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) w[i] = w16[i];
  for (int i = 16; i < 64; i++) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
  for (int i = 0; i < 64; i++) {
    const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s[0] += a;
  s[1] += b;
  s[2] += c;
  s[3] += d;
  s[4] += e;
  s[5] += f;
  s[6] += g;
  s[7] += h;
}

#if defined(__x86_64__)
__attribute__((target("sha,sse4.1,ssse3"))) void compressNi(uint32_t s[8], const uint32_t w[16]) { compress<1>(reinterpret_cast<uint32_t(*)[8]>(s), reinterpret_cast<const uint32_t(*)[16]>(w)); }
#endif

using Compress = void (*)(uint32_t*, const uint32_t*);

// SHA-256 of data[0..len) into out[0..32).
void sha256(Compress compress, const uint8_t* data, size_t len, uint8_t* out) {
  uint32_t s[8], w[16];
  memcpy(s, IV, sizeof s);
  size_t i = 0;
  for (; i + 64 <= len; i += 64) {
    for (int j = 0; j < 16; j++) w[j] = be32(data + i + 4 * j);
    compress(s, w);
  }
  // the rest, the 0x80 byte and the length in bits: one block, or two when fewer than 9 bytes are left
  uint8_t tail[128] = {0};
  const size_t rest = len - i;
  memcpy(tail, data + i, rest);
  tail[rest] = 0x80;
  const size_t blocks = rest + 9 <= 64 ? 1 : 2;
  const uint64_t bits = uint64_t(len) * 8;
  for (int j = 0; j < 8; j++) tail[blocks * 64 - 1 - j] = uint8_t(bits >> (8 * j));
  for (size_t b = 0; b < blocks; b++) {
    for (int j = 0; j < 16; j++) w[j] = be32(tail + 64 * b + 4 * j);
    compress(s, w);
  }
  for (int j = 0; j < 8; j++) {
    out[4 * j] = uint8_t(s[j] >> 24);
    out[4 * j + 1] = uint8_t(s[j] >> 16);
    out[4 * j + 2] = uint8_t(s[j] >> 8);
    out[4 * j + 3] = uint8_t(s[j]);
  }
}

Compress fastest() {
#if defined(__x86_64__)
  if (cpuHasShaNi()) return compressNi;
#endif
  return compressPortable;
}

// The buffers one hash function reads and writes (each copy of core/hash.ts binds its own: a
// worker's bundle loaded beside the sources shares this module with them).
struct Bound {
  napi_ref input = nullptr, output = nullptr;
  uint8_t* in = nullptr;
  size_t inLen = 0;
  uint8_t* out = nullptr;
};

const Compress FASTEST = fastest();

void freeBound(napi_env env, void* data, void*) {
  Bound* b = static_cast<Bound*>(data);
  napi_delete_reference(env, b->input);
  napi_delete_reference(env, b->output);
  delete b;
}

bool bytesOf(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  void* p;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, nullptr, "expected a Uint8Array");
    return false;
  }
  *data = static_cast<uint8_t*>(p);
  return true;
}

// hash(len), as bind() returns it: SHA-256 of its input's first len bytes into its output.
napi_value Hash(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  const Bound* b = static_cast<const Bound*>(data);
  uint32_t len;
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &len) != napi_ok || len > b->inLen) {
    napi_throw_range_error(env, nullptr, "hash(len) hashes at most its input's length");
    return nullptr;
  }
  sha256(FASTEST, b->in, len, b->out);
  return nullptr;
}

// bind(input, output32): a function hash(len) that hashes input's first len bytes into output's
// first 32, by the CPU's fastest implementation. It keeps both buffers alive.
napi_value Bind(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint8_t *in, *out;
  size_t inLen, outLen;
  if (argc < 2 || !bytesOf(env, argv[0], &in, &inLen) || !bytesOf(env, argv[1], &out, &outLen)) return nullptr;
  if (outLen < 32) {
    napi_throw_range_error(env, nullptr, "the output holds 32 bytes");
    return nullptr;
  }
  Bound* b = new Bound{nullptr, nullptr, in, inLen, out};
  napi_create_reference(env, argv[0], 1, &b->input);
  napi_create_reference(env, argv[1], 1, &b->output);
  napi_value fn;
  napi_create_function(env, "hash", NAPI_AUTO_LENGTH, Hash, b, &fn);
  napi_add_finalizer(env, fn, b, freeBound, nullptr, nullptr);
  return fn;
}

// implementation(): 'sha-ni' or 'portable', what hash() and digest() use.
napi_value Implementation(napi_env env, napi_callback_info) {
  napi_value r;
  napi_create_string_utf8(env, FASTEST == compressPortable ? "portable" : "sha-ni", NAPI_AUTO_LENGTH, &r);
  return r;
}

// digest(data, portable): a new 32-byte Buffer, SHA-256 of data, by the portable C when portable is
// true (tests compare both implementations with node:crypto), else by the fastest.
napi_value Digest(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint8_t* data;
  size_t len;
  bool portable = false;
  if (argc < 1 || !bytesOf(env, argv[0], &data, &len)) return nullptr;
  if (argc > 1) napi_get_value_bool(env, argv[1], &portable);
  void* outData;
  napi_value out;
  napi_create_buffer(env, 32, &outData, &out);
  sha256(portable ? compressPortable : FASTEST, data, len, static_cast<uint8_t*>(outData));
  return out;
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"bind", nullptr, Bind, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"implementation", nullptr, Implementation, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"digest", nullptr, Digest, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
