/*
 * ferry_native: AF_UNIX SOCK_SEQPACKET sockets for talking to `criu swrk <fd>`.
 * Node core cannot create or use SEQPACKET sockets; this addon does exactly that.
 *
 *   socketpair()            -> [ferryFd, peerFd]  both CLOEXEC; ferryFd O_NONBLOCK, peerFd blocking
 *   setNonblocking(fd)      sets O_NONBLOCK (throws on a bad fd)
 *   send(fd, u8, fds?)      -> Promise<void>    one record, fds passed with SCM_RIGHTS
 *   receive(fd)             -> Promise<{data: Buffer, fds: number[]} | null>   null = EOF
 *   close(fd)               rejects pending operations (code ECANCELED), stops polling, closes fd
 *   maxFds                  the most fds one record may carry (either direction)
 *   hashBlocks(...), hash128(...), hashEach(...)   XXH3-128 of file blocks (thread pool), of a buffer, of each block of a buffer: see hash.c
 *
 * I/O never blocks: each operation first tries the syscall with MSG_DONTWAIT; on EAGAIN it is
 * queued (FIFO per fd and direction) and a libuv poll handle waits for readiness. The poll is
 * active only while operations are queued, so an idle channel does not keep the loop alive.
 * Errors are Error objects with `code` (the errno name, e.g. "EPIPE"), `syscall` and `errno`.
 *
 * Everything runs on the JS thread of one environment (main thread or a worker).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "hash.h"

#define MAX_FDS 32
/* The kernel refuses a SEQPACKET record larger than the sender's SO_SNDBUF (minus a little) and
 * doubles the value set here: 8 MiB -> records up to ~16 MiB. Memory is only used while in flight. */
#define SNDBUF_BYTES (8 << 20)

typedef struct op {
  struct op *next;
  napi_deferred deferred;
  /* send only: private copies, so the caller may reuse its buffer and close its fds at once */
  char *data;
  size_t len;
  int nfds;
  int fds[MAX_FDS];
} op_t;

typedef struct {
  op_t *head, *tail;
} queue_t;

struct fenv;

typedef struct chan {
  struct chan *next;
  struct fenv *fe;
  int fd;
  int events; /* what the poll handle currently waits for; 0 = stopped */
  uv_poll_t poll;
  queue_t recvq, sendq;
} chan_t;

/* Per-environment state (one per main thread / worker that loads the addon). */
typedef struct fenv {
  napi_env env;
  uv_loop_t *loop;
  napi_async_context actx;
  chan_t *chans;                      /* fds with a poll handle */
  unsigned closing;                   /* poll handles waiting for their close callback */
  int torn_down;
  napi_async_cleanup_hook_handle hook;
} fenv_t;

/* ------------------------------------------------------------------ small helpers */

static void q_push(queue_t *q, op_t *op) {
  op->next = NULL;
  if (q->tail) q->tail->next = op;
  else q->head = op;
  q->tail = op;
}

static op_t *q_pop(queue_t *q) {
  op_t *op = q->head;
  if (op) {
    q->head = op->next;
    if (!q->head) q->tail = NULL;
  }
  return op;
}

static void close_fds(const int *fds, int n) {
  for (int i = 0; i < n; i++) close(fds[i]);
}

static void op_free(op_t *op) {
  close_fds(op->fds, op->nfds);
  free(op->data);
  free(op);
}

static napi_value make_error(napi_env env, const char *code, const char *message,
                             const char *syscall, int err) {
  napi_value c, m, e, v;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, c, m, &e);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "syscall", v);
  napi_create_int32(env, -err, &v); /* negative, like Node's own system errors */
  napi_set_named_property(env, e, "errno", v);
  return e;
}

static napi_value errno_error(napi_env env, int err, const char *syscall) {
  char code[32], msg[160];
  const char *name = strerrorname_np(err);
  if (name) snprintf(code, sizeof code, "%s", name);
  else snprintf(code, sizeof code, "ERRNO_%d", err);
  snprintf(msg, sizeof msg, "%s failed: %s (%s)", syscall, code, strerror(err));
  return make_error(env, code, msg, syscall, err);
}

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, errno_error(env, err, syscall));
  return NULL;
}

/* r > 0: resolve with value; r < 0: reject with errno -r. */
static void settle(napi_env env, napi_deferred d, int r, napi_value value, const char *syscall) {
  if (r > 0) napi_resolve_deferred(env, d, value);
  else napi_reject_deferred(env, d, errno_error(env, -r, syscall));
}

/* ------------------------------------------------------------------ the syscalls */

/* One whole record. Returns 1 (done, *out = {data, fds} or null at EOF), 0 (EAGAIN), -errno. */
static int try_recv(napi_env env, int fd, napi_value *out) {
  ssize_t len, got;
  /* MSG_TRUNC makes the peek return the record's real length: no size cap. */
  do len = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  while (len < 0 && errno == EINTR);
  if (len < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;

  void *data = NULL;
  napi_value buf;
  if (napi_create_buffer(env, (size_t)len, &data, &buf) != napi_ok) return -ENOMEM;

  union {
    struct cmsghdr align;
    char space[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  } ctl;
  struct iovec iov = {.iov_base = data, .iov_len = (size_t)len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  do got = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (got < 0 && errno == EINTR);
  if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;

  int fds[MAX_FDS], nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n && nfds < MAX_FDS; i++)
      memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }
  /* MSG_CTRUNC: more than MAX_FDS fds (the kernel closed the rest); MSG_TRUNC: cannot happen
   * with a single reader. Either way the record is incomplete: report it, keep nothing. */
  if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
    close_fds(fds, nfds);
    return -EMSGSIZE;
  }
  /* recv() == 0: the peer closed (a zero-length record reads the same, as it does for CRIU). */
  if (got == 0 && len == 0) {
    close_fds(fds, nfds);
    napi_get_null(env, out);
    return 1;
  }
  if (got < len && napi_create_buffer_copy(env, (size_t)got, data, NULL, &buf) != napi_ok) {
    close_fds(fds, nfds);
    return -ENOMEM;
  }

  napi_value obj, arr, v;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "data", buf);
  napi_create_array_with_length(env, (size_t)nfds, &arr);
  for (int i = 0; i < nfds; i++) {
    napi_create_int32(env, fds[i], &v);
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  napi_set_named_property(env, obj, "fds", arr);
  *out = obj;
  return 1;
}

/* One record. Returns 1 (sent), 0 (EAGAIN), -errno. */
static int try_send(int fd, const void *data, size_t len, const int *fds, int nfds) {
  union {
    struct cmsghdr align;
    char space[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  } ctl;
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(&ctl, 0, sizeof ctl);
    msg.msg_control = ctl.space;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
  }
  ssize_t r;
  do r = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
  return 1; /* SEQPACKET: all or nothing */
}

/* ------------------------------------------------------------------ queues and polling */

static void on_poll(uv_poll_t *handle, int status, int events);

static void serve_recv(chan_t *c) {
  napi_env env = c->fe->env;
  while (c->recvq.head) {
    napi_value v = NULL;
    int r = try_recv(env, c->fd, &v);
    if (r == 0) break;
    op_t *op = q_pop(&c->recvq);
    settle(env, op->deferred, r, v, "recvmsg");
    op_free(op);
  }
}

static void serve_send(chan_t *c) {
  napi_env env = c->fe->env;
  while (c->sendq.head) {
    op_t *op = c->sendq.head;
    int r = try_send(c->fd, op->data, op->len, op->fds, op->nfds);
    if (r == 0) break;
    q_pop(&c->sendq);
    napi_value undef;
    napi_get_undefined(env, &undef);
    settle(env, op->deferred, r, undef, "sendmsg");
    op_free(op);
  }
}

/* Rejects every queued operation. canceled: the channel was closed (code ECANCELED). */
static void reject_queue(napi_env env, queue_t *q, int err, const char *syscall, int canceled) {
  op_t *op;
  while ((op = q_pop(q))) {
    napi_value e;
    if (canceled) {
      char msg[96];
      snprintf(msg, sizeof msg, "%s canceled: the channel was closed", syscall);
      e = make_error(env, "ECANCELED", msg, syscall, ECANCELED);
    } else {
      e = errno_error(env, err, syscall);
    }
    napi_reject_deferred(env, op->deferred, e);
    op_free(op);
  }
}

/* Poll for exactly what the queues need; stop when both are empty. */
static void chan_update(chan_t *c) {
  int want = (c->recvq.head ? UV_READABLE : 0) | (c->sendq.head ? UV_WRITABLE : 0);
  if (want == c->events) return;
  int r = want ? uv_poll_start(&c->poll, want, on_poll) : uv_poll_stop(&c->poll);
  if (r < 0) {
    reject_queue(c->fe->env, &c->recvq, -r, "uv_poll_start", 0);
    reject_queue(c->fe->env, &c->sendq, -r, "uv_poll_start", 0);
    uv_poll_stop(&c->poll);
    want = 0;
  }
  c->events = want;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  chan_t *c = handle->data;
  napi_env env = c->fe->env;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value resource;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  /* A callback scope: when it closes, Node runs the microtasks (promise reactions). */
  napi_create_object(env, &resource);
  if (napi_open_callback_scope(env, resource, c->fe->actx, &cs) != napi_ok) {
    napi_close_handle_scope(env, hs);
    return;
  }
  if (status < 0) {
    /* libuv reports POLLERR (e.g. the peer died with unread data: sk_err = ECONNRESET) as
     * UV_EBADF and stops the handle. Let the syscalls say what really happened. */
    c->events = 0;
    events = UV_READABLE | UV_WRITABLE;
  }
  if (events & UV_READABLE) serve_recv(c);
  if (events & UV_WRITABLE) serve_send(c);
  chan_update(c);
  napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
}

static chan_t *chan_find(fenv_t *fe, int fd) {
  for (chan_t *c = fe->chans; c; c = c->next)
    if (c->fd == fd) return c;
  return NULL;
}

/* The fd's channel, created (with its poll handle) on first need. NULL: *err = errno. */
static chan_t *chan_get(fenv_t *fe, int fd, int *err) {
  chan_t *c = chan_find(fe, fd);
  if (c) return c;
  c = calloc(1, sizeof *c);
  if (!c) {
    *err = ENOMEM;
    return NULL;
  }
  int r = uv_poll_init(fe->loop, &c->poll, fd);
  if (r < 0) {
    free(c);
    *err = -r;
    return NULL;
  }
  c->poll.data = c;
  c->fe = fe;
  c->fd = fd;
  c->next = fe->chans;
  fe->chans = c;
  return c;
}

static void finish_teardown(fenv_t *fe) {
  napi_async_destroy(fe->env, fe->actx);
  napi_remove_async_cleanup_hook(fe->hook);
  free(fe);
}

static void on_closed(uv_handle_t *handle) {
  chan_t *c = handle->data;
  fenv_t *fe = c->fe;
  free(c);
  if (--fe->closing == 0 && fe->torn_down) finish_teardown(fe);
}

static void chan_release(chan_t *c) {
  c->fe->closing++;
  uv_close((uv_handle_t *)&c->poll, on_closed); /* stops polling (epoll_ctl DEL) right away */
}

/* The environment is going away (process exit, worker end): close every poll handle so the
 * loop can close. Pending promises can no longer be settled; their ops are just freed. */
static void on_teardown(napi_async_cleanup_hook_handle hook, void *arg) {
  fenv_t *fe = arg;
  fe->hook = hook;
  fe->torn_down = 1;
  chan_t *c;
  while ((c = fe->chans)) {
    fe->chans = c->next;
    op_t *op;
    while ((op = q_pop(&c->recvq))) op_free(op);
    while ((op = q_pop(&c->sendq))) op_free(op);
    chan_release(c);
  }
  if (fe->closing == 0) finish_teardown(fe);
}

/* ------------------------------------------------------------------ JS functions */

/* Gets up to `max` args and the fenv; argv[0] must be an fd (int32 >= 0). */
static int get_args(napi_env env, napi_callback_info info, size_t max, napi_value *argv,
                    size_t *argc, fenv_t **fe, int *fd) {
  void *data;
  *argc = max;
  if (napi_get_cb_info(env, info, argc, argv, NULL, &data) != napi_ok) return 0;
  *fe = data;
  if (max == 0) return 1;
  napi_valuetype t = napi_undefined;
  if (*argc >= 1) napi_typeof(env, argv[0], &t);
  if (t != napi_number || napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0) {
    napi_throw_type_error(env, NULL, "fd must be a non-negative integer");
    return 0;
  }
  return 1;
}

static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return throw_errno(env, errno, "socketpair");
  for (int i = 0; i < 2; i++) {
    int size = SNDBUF_BYTES;
    /* SO_SNDBUFFORCE (CAP_NET_ADMIN) ignores net.core.wmem_max; fall back to the capped one. */
    if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
      (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  int fl = fcntl(sv[0], F_GETFL);
  if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0) {
    int err = errno;
    close_fds(sv, 2);
    return throw_errno(env, err, "fcntl");
  }
  napi_value arr, v;
  napi_create_array_with_length(env, 2, &arr);
  for (int i = 0; i < 2; i++) {
    napi_create_int32(env, sv[i], &v);
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  return arr;
}

static napi_value js_set_nonblocking(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  fenv_t *fe;
  int fd;
  if (!get_args(env, info, 1, argv, &argc, &fe, &fd)) return NULL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return throw_errno(env, errno, "fcntl");
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return throw_errno(env, errno, "fcntl");
  return NULL;
}

static napi_value js_receive(napi_env env, napi_callback_info info) {
  napi_value argv[1], promise;
  size_t argc;
  fenv_t *fe;
  int fd, err;
  napi_deferred d;
  if (!get_args(env, info, 1, argv, &argc, &fe, &fd)) return NULL;
  if (napi_create_promise(env, &d, &promise) != napi_ok) return NULL;

  chan_t *c = chan_find(fe, fd);
  if (!c || !c->recvq.head) { /* nothing queued ahead of us: try right away */
    napi_value v = NULL;
    int r = try_recv(env, fd, &v);
    if (r != 0) {
      settle(env, d, r, v, "recvmsg");
      return promise;
    }
    if (!(c = chan_get(fe, fd, &err))) {
      settle(env, d, -err, NULL, "uv_poll_init");
      return promise;
    }
  }
  op_t *op = calloc(1, sizeof *op);
  if (!op) {
    settle(env, d, -ENOMEM, NULL, "recvmsg");
    return promise;
  }
  op->deferred = d;
  q_push(&c->recvq, op);
  chan_update(c);
  return promise;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[3], promise;
  size_t argc;
  fenv_t *fe;
  int fd, err;
  napi_deferred d;
  if (!get_args(env, info, 3, argv, &argc, &fe, &fd)) return NULL;

  bool is_ta = false;
  napi_typedarray_type type;
  size_t len = 0;
  void *data = NULL;
  if (argc >= 2) napi_is_typedarray(env, argv[1], &is_ta);
  if (!is_ta || napi_get_typedarray_info(env, argv[1], &type, &len, &data, NULL, NULL) != napi_ok ||
      (type != napi_uint8_array && type != napi_uint8_clamped_array)) {
    napi_throw_type_error(env, NULL, "data must be a Uint8Array");
    return NULL;
  }

  int fds[MAX_FDS], nfds = 0;
  napi_valuetype t = napi_undefined;
  if (argc >= 3) napi_typeof(env, argv[2], &t);
  if (t != napi_undefined) {
    bool is_arr = false;
    uint32_t n = 0;
    napi_is_array(env, argv[2], &is_arr);
    if (!is_arr || napi_get_array_length(env, argv[2], &n) != napi_ok || n > MAX_FDS) {
      napi_throw_range_error(env, NULL, "fds must be an array of at most maxFds fds");
      return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
      napi_value v;
      napi_valuetype vt = napi_undefined;
      if (napi_get_element(env, argv[2], i, &v) == napi_ok) napi_typeof(env, v, &vt);
      if (vt != napi_number || napi_get_value_int32(env, v, &fds[i]) != napi_ok || fds[i] < 0) {
        napi_throw_type_error(env, NULL, "fds must be non-negative integers");
        return NULL;
      }
    }
    nfds = (int)n;
  }
  if (napi_create_promise(env, &d, &promise) != napi_ok) return NULL;

  napi_value undef;
  napi_get_undefined(env, &undef);
  chan_t *c = chan_find(fe, fd);
  if (!c || !c->sendq.head) { /* nothing queued ahead of us: try right away */
    int r = try_send(fd, data, len, fds, nfds);
    if (r != 0) {
      settle(env, d, r, undef, "sendmsg");
      return promise;
    }
    if (!(c = chan_get(fe, fd, &err))) {
      settle(env, d, -err, NULL, "uv_poll_init");
      return promise;
    }
  }
  /* Queue it, with private copies of the bytes and of the fds. */
  op_t *op = calloc(1, sizeof *op);
  if (!op || !(op->data = malloc(len ? len : 1))) {
    free(op);
    settle(env, d, -ENOMEM, NULL, "sendmsg");
    return promise;
  }
  if (len) memcpy(op->data, data, len);
  op->len = len;
  for (; op->nfds < nfds; op->nfds++) {
    if ((op->fds[op->nfds] = fcntl(fds[op->nfds], F_DUPFD_CLOEXEC, 0)) < 0) {
      err = errno;
      op_free(op);
      settle(env, d, -err, NULL, "fcntl");
      return promise;
    }
  }
  op->deferred = d;
  q_push(&c->sendq, op);
  chan_update(c);
  return promise;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  fenv_t *fe;
  int fd;
  if (!get_args(env, info, 1, argv, &argc, &fe, &fd)) return NULL;
  for (chan_t **pp = &fe->chans; *pp; pp = &(*pp)->next) {
    chan_t *c = *pp;
    if (c->fd != fd) continue;
    *pp = c->next;
    reject_queue(env, &c->recvq, 0, "recvmsg", 1);
    reject_queue(env, &c->sendq, 0, "sendmsg", 1);
    chan_release(c);
    break;
  }
  /* Linux releases the fd even when close() fails with EINTR. */
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return NULL;
}

NAPI_MODULE_INIT() {
  fenv_t *fe = calloc(1, sizeof *fe);
  if (!fe) {
    napi_throw_error(env, NULL, "ferry_native: out of memory");
    return NULL;
  }
  fe->env = env;
  napi_value resource, name;
  if (napi_get_uv_event_loop(env, &fe->loop) != napi_ok ||
      napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "FerrySeqpacket", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, resource, name, &fe->actx) != napi_ok) {
    free(fe);
    napi_throw_error(env, NULL, "ferry_native: initialisation failed");
    return NULL;
  }
  napi_add_async_cleanup_hook(env, on_teardown, fe, NULL);

  napi_value max_fds;
  napi_create_int32(env, MAX_FDS, &max_fds);
  napi_property_descriptor props[] = {
      {"socketpair", NULL, js_socketpair, NULL, NULL, NULL, napi_enumerable, fe},
      {"setNonblocking", NULL, js_set_nonblocking, NULL, NULL, NULL, napi_enumerable, fe},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, fe},
      {"receive", NULL, js_receive, NULL, NULL, NULL, napi_enumerable, fe},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, fe},
      {"maxFds", NULL, NULL, NULL, NULL, max_fds, napi_enumerable, NULL},
      {"hashBlocks", NULL, ferry_js_hash_blocks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hash128", NULL, ferry_js_hash128, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hashEach", NULL, ferry_js_hash_each, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
