/*
 * ferry_native hashing: XXH3-128 (Debian's libxxhash) of every block of a file range, on libuv's
 * thread pool.
 *
 *   hashBlocks(fd, offset, length, blockSize, mapped?, background?) -> Promise<Buffer>   length/blockSize (rounded up)
 *                                                canonical 16-byte hashes, one per block; a short
 *                                                last block is hashed as it is
 *   hash128(u8)                                -> Buffer(16)        canonical XXH3-128, synchronous
 *
 * The range is read with pread into a 1 MiB buffer that stays in cache while it is hashed:
 * measured on tmpfs with 4 KiB pages, that is cheaper than mapping the file (building the page
 * tables of a 1 GiB mapping costs more than copying it). With `mapped` (a file on a tmpfs with
 * huge pages, where mapping 1 GiB takes 512 entries) the range is mapped and hashed in place,
 * with no copy at all. Ranges in flight at once run on several pool threads.
 * Errors reject with an Error carrying `code` (errno name) and `syscall`.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <node_api.h>
#include <xxhash.h>

#include "hash.h"

#define READ_BUF (1 << 20)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int64_t offset;
  int64_t length;
  int64_t block;
  int mapped; /* map the range instead of reading it (huge-page tmpfs: no page-table cost) */
  int background; /* run at the lowest CPU priority (hashing beside a running CRIU dump) */
  /* results */
  int err;
  const char *syscall;
  unsigned char *hashes; /* malloc'd, n_blocks * 16 */
  int64_t n_blocks;
} hash_job_t;

static void hash_body(hash_job_t *j);

static void hash_execute(napi_env env, void *data) {
  (void)env;
  hash_job_t *j = data;
  if (!j->background) { hash_body(j); return; }
  /* nice applies per thread on Linux: lower this pool thread for the job, then restore it */
  pid_t tid = (pid_t)syscall(SYS_gettid);
  errno = 0;
  int before = getpriority(PRIO_PROCESS, (id_t)tid);
  int restore = errno == 0 && setpriority(PRIO_PROCESS, (id_t)tid, 19) == 0;
  hash_body(j);
  if (restore) setpriority(PRIO_PROCESS, (id_t)tid, before);
}

static void hash_body(hash_job_t *j) {
  j->n_blocks = (j->length + j->block - 1) / j->block;
  j->hashes = malloc(j->n_blocks > 0 ? (size_t)j->n_blocks * 16 : 1);
  /* whole blocks per read */
  if (!j->hashes) { j->err = ENOMEM; j->syscall = "malloc"; return; }
  if (j->mapped && j->length > 0) {
    struct stat st;
    if (fstat(j->fd, &st) != 0) { j->err = errno; j->syscall = "fstat"; return; }
    /* never map past the end: a fault there would be SIGBUS, not an error */
    if (st.st_size < j->offset + j->length) { j->err = ENODATA; j->syscall = "mmap"; return; }
    const unsigned char *p = mmap(NULL, (size_t)j->length, PROT_READ, MAP_SHARED | MAP_POPULATE, j->fd, (off_t)j->offset);
    if (p == MAP_FAILED) { j->err = errno; j->syscall = "mmap"; return; }
    for (int64_t bi = 0; bi < j->n_blocks; bi++) {
      int64_t off = bi * j->block;
      size_t n = (size_t)(j->length - off < j->block ? j->length - off : j->block);
      XXH128_canonicalFromHash((XXH128_canonical_t *)(j->hashes + bi * 16), XXH3_128bits(p + off, n));
    }
    munmap((void *)p, (size_t)j->length);
    return;
  }
  size_t bufsize = (size_t)(j->block >= READ_BUF ? j->block : (READ_BUF / j->block) * j->block);
  unsigned char *buf = malloc(bufsize);
  if (!buf) { j->err = ENOMEM; j->syscall = "malloc"; return; }
  int64_t done = 0, bi = 0;
  while (done < j->length) {
    size_t want = (size_t)(j->length - done < (int64_t)bufsize ? j->length - done : (int64_t)bufsize);
    size_t got = 0;
    while (got < want) {
      ssize_t k = pread(j->fd, buf + got, want - got, (off_t)(j->offset + done + (int64_t)got));
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) { j->err = errno; j->syscall = "pread"; free(buf); return; }
      if (k == 0) { j->err = ENODATA; j->syscall = "pread"; free(buf); return; } /* file shrank */
      got += (size_t)k;
    }
    for (size_t off = 0; off < got; off += (size_t)j->block, bi++) {
      size_t n = got - off < (size_t)j->block ? got - off : (size_t)j->block;
      XXH128_canonicalFromHash((XXH128_canonical_t *)(j->hashes + bi * 16), XXH3_128bits(buf + off, n));
    }
    done += (int64_t)got;
  }
  free(buf);
}

static void free_pages(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void hash_complete(napi_env env, napi_status status, void *data) {
  hash_job_t *j = data;
  if (status != napi_ok && j->err == 0) { j->err = ECANCELED; j->syscall = "hashBlocks"; }
  if (j->err) {
    napi_value msg, code, syscall, err;
    char text[160];
    const char *ename = strerrorname_np(j->err);
    snprintf(text, sizeof text, "%s failed: %s (%s)", j->syscall, ename ? ename : "?", strerror(j->err));
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, ename ? ename : "EIO", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, j->syscall, NAPI_AUTO_LENGTH, &syscall);
    napi_create_error(env, code, msg, &err);
    napi_set_named_property(env, err, "syscall", syscall);
    napi_reject_deferred(env, j->deferred, err);
    free(j->hashes);
  } else {
    napi_value hashes;
    if (napi_create_external_buffer(env, (size_t)j->n_blocks * 16, j->hashes, free_pages, NULL, &hashes) != napi_ok) {
      void *dst;
      napi_create_buffer_copy(env, (size_t)j->n_blocks * 16, j->hashes, &dst, &hashes);
      free(j->hashes);
    }
    napi_resolve_deferred(env, j->deferred, hashes);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

napi_value ferry_js_hash128(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  void *data, *dst;
  size_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "hash128(buffer): a Buffer or Uint8Array expected");
    return NULL;
  }
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(len ? data : "", len));
  napi_create_buffer_copy(env, 16, &c, &dst, &out);
  return out;
}

/*
 * hashEach(data, blockSize, out, outOffset): the XXH3-128 (canonical) of every whole block of
 * `data`, written one after another into `out` from `outOffset`; returns how many. One call per
 * chunk instead of one per 4 KiB block (the per-call cost was most of the hashing's).
 */
napi_value ferry_js_hash_each(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  void *data, *out;
  size_t len, out_len;
  int64_t block, off;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok || get_i64(env, argv[1], &block) ||
      napi_get_buffer_info(env, argv[2], &out, &out_len) != napi_ok || get_i64(env, argv[3], &off)) {
    napi_throw_type_error(env, "EINVAL", "hashEach(data, blockSize, out, outOffset): two Buffers and two numbers expected");
    return NULL;
  }
  if (block <= 0 || off < 0) {
    napi_throw_range_error(env, "EINVAL", "hashEach: bad blockSize or outOffset");
    return NULL;
  }
  size_t n = len / (size_t)block;
  if ((size_t)off > out_len || n > (out_len - (size_t)off) / 16) {
    napi_throw_range_error(env, "EINVAL", "hashEach: out has no room for the hashes");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits((const char *)data + i * (size_t)block, (size_t)block));
    memcpy((char *)out + off + i * 16, &c, 16);
  }
  napi_create_int64(env, (int64_t)n, &result);
  return result;
}

napi_value ferry_js_hash_blocks(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], promise, name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, offset, length, block;
  bool mapped = false, background = false;
  if (argc >= 5) napi_get_value_bool(env, argv[4], &mapped);
  if (argc >= 6) napi_get_value_bool(env, argv[5], &background);
  if (argc < 4 || get_i64(env, argv[0], &fd) || get_i64(env, argv[1], &offset) ||
      get_i64(env, argv[2], &length) || get_i64(env, argv[3], &block)) {
    napi_throw_type_error(env, "EINVAL", "hashBlocks(fd, offset, length, blockSize): four numbers expected");
    return NULL;
  }
  if (fd < 0 || offset < 0 || length < 0 || block <= 0 || (mapped && offset % sysconf(_SC_PAGESIZE) != 0)) {
    napi_throw_range_error(env, "EINVAL", "hashBlocks: bad fd, offset, length or blockSize");
    return NULL;
  }
  hash_job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, "ENOMEM", "hashRange: out of memory");
    return NULL;
  }
  j->fd = (int)fd;
  j->offset = offset;
  j->length = length;
  j->block = block;
  j->mapped = mapped;
  j->background = background;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "FerryHashBlocks", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, hash_execute, hash_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}
