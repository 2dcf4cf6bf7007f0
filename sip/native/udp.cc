// The SIP UDP socket's datagram path in C (sip/udp.ts): Node's dgram costs 8-13 us more per
// transaction than recvfrom/sendto from C on this project's machine (a 200 OK responder, 15-20
// against 7.4-7.6 us), in a 64 KB buffer per datagram, a call into JavaScript per datagram and
// a request object per send. Here the socket is read with recvmmsg, up to 64 datagrams a system
// call, and each read's datagrams reach JavaScript in one call (their bytes in one Buffer, their
// offsets, lengths and sources in a Uint32Array); a turn's answers leave with one sendmmsg.
// IPv4 only; Linux only (recvmmsg, sendmmsg). Built at install by tools/build-native.ts with
// the Node-API and libuv headers that ship with Node.
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <node_api.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <arpa/inet.h>

#include <new>

namespace {

constexpr int kBatch = 64;
// a UDP payload is at most 65,507 bytes: no datagram is ever cut
constexpr size_t kSlot = 65536;
// reads per readiness before the event loop gets its turn back
constexpr int kRounds = 8;

struct Sock {
  int fd = -1;
  uv_poll_t poll;
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  napi_ref self = nullptr;
  napi_async_context context = nullptr;
  bool closing = false;
  char* slots = nullptr;
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_in from[kBatch];
};

napi_value Throw(napi_env env, const char* what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, nullptr, msg);
  return nullptr;
}

void OnClosed(uv_handle_t* h) {
  Sock* s = static_cast<Sock*>(h->data);
  if (s->fd >= 0) close(s->fd);
  delete[] s->slots;
  delete s;
}

void OnReadable(uv_poll_t* p, int status, int events) {
  Sock* s = static_cast<Sock*>(p->data);
  if (s->closing || status < 0 || (events & UV_READABLE) == 0) return;
  napi_env env = s->env;
  for (int round = 0; round < kRounds && !s->closing; round++) {
    for (int i = 0; i < kBatch; i++) {
      s->iov[i].iov_base = s->slots + i * kSlot;
      s->iov[i].iov_len = kSlot;
      memset(&s->msgs[i].msg_hdr, 0, sizeof(msghdr));
      s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
      s->msgs[i].msg_hdr.msg_iovlen = 1;
      s->msgs[i].msg_hdr.msg_name = &s->from[i];
      s->msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    }
    int n = recvmmsg(s->fd, s->msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;  // EAGAIN: read out; an error on an unconnected socket: nothing to do
    size_t total = 0;
    for (int i = 0; i < n; i++) total += s->msgs[i].msg_len;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    void* data = nullptr;
    napi_value bytes, metaBuf, meta, argv[3], cb, recv, result;
    uint32_t* m = nullptr;
    bool ok = napi_create_buffer(env, total > 0 ? total : 1, &data, &bytes) == napi_ok &&
              napi_create_arraybuffer(env, n * 4 * sizeof(uint32_t), reinterpret_cast<void**>(&m), &metaBuf) == napi_ok &&
              napi_create_typedarray(env, napi_uint32_array, n * 4, metaBuf, 0, &meta) == napi_ok &&
              napi_create_uint32(env, static_cast<uint32_t>(n), &argv[2]) == napi_ok &&
              napi_get_reference_value(env, s->callback, &cb) == napi_ok &&
              napi_get_reference_value(env, s->self, &recv) == napi_ok;
    if (ok) {
      size_t at = 0;
      for (int i = 0; i < n; i++) {
        size_t len = s->msgs[i].msg_len;
        memcpy(static_cast<char*>(data) + at, s->slots + i * kSlot, len);
        m[i * 4] = static_cast<uint32_t>(at);
        m[i * 4 + 1] = static_cast<uint32_t>(len);
        m[i * 4 + 2] = ntohs(s->from[i].sin_port);
        m[i * 4 + 3] = ntohl(s->from[i].sin_addr.s_addr);
        at += len;
      }
      argv[0] = bytes;
      argv[1] = meta;
      // as node::MakeCallback: process.nextTick and promise jobs run when it returns
      if (napi_make_callback(env, s->context, recv, cb, 3, argv, &result) == napi_pending_exception) {
        napi_value e;
        napi_get_and_clear_last_exception(env, &e);
        napi_fatal_exception(env, e);
      }
    }
    napi_close_handle_scope(env, scope);
    if (n < kBatch) return;
  }
}

// The call's first N arguments, or a TypeError naming how it is called.
template <size_t N>
bool Args(napi_env env, napi_callback_info info, napi_value (&argv)[N], const char* usage) {
  size_t argc = N;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < N) napi_throw_type_error(env, nullptr, usage);
  return argc >= N;
}

Sock* SockOf(napi_env env, napi_value v) {
  void* p = nullptr;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == nullptr) {
    napi_throw_type_error(env, nullptr, "not a socket");
    return nullptr;
  }
  return static_cast<Sock*>(p);
}

// open(host: string, port: number, rcvbuf: number, sndbuf: number, owner: object, onBatch: fn) -> [socket, port]
napi_value Open(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!Args(env, info, argv, "open(host, port, rcvbuf, sndbuf, owner, onBatch)")) return nullptr;
  char host[64];
  size_t hl = 0;
  uint32_t port = 0, rcv = 0, snd = 0;
  if (napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hl) != napi_ok || napi_get_value_uint32(env, argv[1], &port) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &rcv) != napi_ok || napi_get_value_uint32(env, argv[3], &snd) != napi_ok || port > 65535) {
    napi_throw_type_error(env, nullptr, "open(host: IPv4 address, port, rcvbuf, sndbuf, owner, onBatch)");
    return nullptr;
  }
  sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    napi_throw_type_error(env, nullptr, "the host is not an IPv4 address");
    return nullptr;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Throw(env, "socket", errno);
  int v = static_cast<int>(rcv);
  if (v > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  v = static_cast<int>(snd);
  if (v > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    int e = errno;
    close(fd);
    return Throw(env, "bind", e);
  }
  socklen_t al = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &al);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  Sock* s = new (std::nothrow) Sock();
  if (s != nullptr) s->slots = new (std::nothrow) char[kBatch * kSlot];
  if (s == nullptr || s->slots == nullptr) {
    delete s;
    close(fd);
    napi_throw_error(env, nullptr, "out of memory");
    return nullptr;
  }
  s->fd = fd;
  s->env = env;
  napi_value name;
  napi_create_string_utf8(env, "DotsSipUdp", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[5], 1, &s->callback);
  napi_create_reference(env, argv[4], 1, &s->self);
  napi_async_init(env, argv[4], name, &s->context);
  uv_poll_init_socket(loop, &s->poll, fd);
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, OnReadable);
  napi_value ext, portV, out;
  napi_create_external(env, s, nullptr, nullptr, &ext);
  napi_create_uint32(env, ntohs(a.sin_port), &portV);
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, ext);
  napi_set_element(env, out, 1, portV);
  return out;
}

// send(socket, bytes: Buffer, meta: Uint32Array [offset, length, port, ipv4] per datagram, count) -> sent
napi_value Send(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!Args(env, info, argv, "send(socket, bytes, meta, count)")) return nullptr;
  Sock* s = SockOf(env, argv[0]);
  if (s == nullptr) return nullptr;
  char* bytes = nullptr;
  size_t blen = 0;
  napi_typedarray_type t;
  size_t mlen = 0, moff = 0;
  void* mdata = nullptr;
  napi_value mab;
  uint32_t count = 0;
  if (napi_get_buffer_info(env, argv[1], reinterpret_cast<void**>(&bytes), &blen) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &t, &mlen, &mdata, &mab, &moff) != napi_ok || t != napi_uint32_array ||
      napi_get_value_uint32(env, argv[3], &count) != napi_ok || static_cast<size_t>(count) * 4 > mlen) {
    napi_throw_type_error(env, nullptr, "send(socket, bytes: Buffer, meta: Uint32Array, count)");
    return nullptr;
  }
  const uint32_t* m = static_cast<const uint32_t*>(mdata);
  uint32_t sent = 0;
  if (s->closing) count = 0;
  while (sent < count) {
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    sockaddr_in to[kBatch];
    int n = 0;
    for (; n < kBatch && sent + n < count; n++) {
      const uint32_t* d = m + (sent + n) * 4;
      if (static_cast<size_t>(d[0]) + d[1] > blen) {
        napi_throw_range_error(env, nullptr, "a datagram past the end of the bytes");
        return nullptr;
      }
      iov[n].iov_base = bytes + d[0];
      iov[n].iov_len = d[1];
      memset(&to[n], 0, sizeof(sockaddr_in));
      to[n].sin_family = AF_INET;
      to[n].sin_port = htons(static_cast<uint16_t>(d[2]));
      to[n].sin_addr.s_addr = htonl(d[3]);
      memset(&msgs[n].msg_hdr, 0, sizeof(msghdr));
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      msgs[n].msg_hdr.msg_name = &to[n];
      msgs[n].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    }
    int r = sendmmsg(s->fd, msgs, n, 0);
    if (r < 0) {
      // the first datagram failed (a full buffer, an unreachable address): it is lost, as UDP
      // may lose it; the rest still go
      sent++;
      continue;
    }
    sent += r;
  }
  napi_value out;
  napi_create_uint32(env, sent, &out);
  return out;
}

// close(socket): stops reading; the socket is closed once libuv lets its poll handle go
napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!Args(env, info, argv, "close(socket)")) return nullptr;
  Sock* s = SockOf(env, argv[0]);
  if (s == nullptr || s->closing) return nullptr;
  s->closing = true;
  uv_poll_stop(&s->poll);
  napi_delete_reference(env, s->callback);
  napi_delete_reference(env, s->self);
  napi_async_destroy(env, s->context);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), OnClosed);
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 3, props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
