/*
 * ferry-uffd: ferry's post-copy page handler on the destination, in place of CRIU's
 * `criu lazy-pages` daemon.
 *
 *   ferry-uffd --dir WORKDIR --lazy FILE (--source-fd N | --connect ADDR:PORT)
 *              [--chunk-pages N] [--inflight-pages N] [--fault-pages N] [--stall-ms N] [--progress-ms N]
 *              [--wait-go 1]
 *
 * `criu restore --lazy-pages` connects to WORKDIR/lazy-pages.socket and sends, per restored task,
 * an int32 pid and then (one byte with SCM_RIGHTS) the task's userfaultfd; a zombie sends a
 * negative pid and no fd; at the end of the restore the u32 0x52535446 ("RSTF"). FILE lists the
 * pages CRIU marked lazy (PE_LAZY), one run a line: "PID VADDR_HEX NR_PAGES".
 *
 * The pages come from the source's CRIU (`criu dump --lazy-pages`), which after its post-dump
 * serves the frozen memory with its page-server protocol (criu/page-xfer.c): a 32-byte request
 * {u32 cmd=PS_IOV_GET; pad; u64 nr_pages; u64 vaddr; u64 dst_id=pid}, answered in order
 * with the same header (cmd ADD_F|PE_PRESENT, nr_pages possibly clamped) and the data.
 *
 * Why not CRIU's daemon: it keeps one background request in flight per process, resets its
 * request size to 64 KiB on every fault and keeps lazy ranges in lists every fault splits and
 * scans; under a program that writes memory flat out it moved ≈ 17 MB/s here. This handler keeps
 * several requests in flight on the one stream (the source answers them back to back), sends a
 * fault's request the moment it is read (queued behind at most --inflight-pages of background
 * data), and keeps one state byte per lazy page in arrays sorted by address.
 *
 * Output: JSON lines on stdout (events "uffd", "restored", "progress", "done", "lost", "error").
 * Exit 0: every lazy page is in place and the source was told the session is over. Exit 3: the
 * source was lost (EOF, error, or silent for --stall-ms with requests outstanding) — the pages
 * still remote are reported and, when stdin gave a "kill PID" line, that process is SIGKILLed
 * before the userfaultfds close (closing them would let the program read zeroes where its
 * memory was). Exit 2: usage; exit 1: any other failure (same kill).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ull
#define PS_IOV_GET 7u
#define PS_IOV_ADD_F 6u
#define PS_IOV_CLOSE 0x1023u
#define PE_PRESENT 4u
#define RSTF 0x52535446u

enum { ST_PENDING = 0, ST_ASKED = 1, ST_DONE = 2 };

struct psi { uint32_t cmd; uint32_t pad; uint64_t nr_pages; uint64_t vaddr; uint64_t dst_id; };

/* A run of lazy pages: where it is now in the process (cur) and where the source has it (src). */
typedef struct { uint64_t cur, src, n; uint8_t *st; } seg_t;

typedef struct {
  int fd;          /* the userfaultfd, -1 once the process is gone */
  int pid;         /* the pid the source knows the pages by (a forked child asks by its parent's) */
  seg_t *segs; int nsegs, cap;
  uint64_t left;   /* pages not yet in place */
  int cursor_seg; uint64_t cursor_pg;
  /* Faulting addresses not yet filled: a copy that failed (EAGAIN while the mapping changes)
   * puts its pages back to pending, and a blocked thread needs them asked for again. */
  uint64_t *waiting; int nwaiting, capwaiting;
} space_t;

typedef struct { int pid; uint64_t vaddr, n; int fault; } req_t;

/* Lazy runs from --lazy, by pid. */
typedef struct { int pid; uint64_t vaddr, n; } run_t;
static run_t *runs; static int nruns;

static space_t *spaces; static int nspaces;
static req_t *reqs; static int rq_head, rq_len, rq_cap;
static uint64_t asked_pages;  /* background pages requested and not yet answered */
static uint64_t chunk_pages = 256, inflight_pages = 1024, fault_pages = 16;
static long stall_ms = 5000, progress_ms = 200;
static int src_fd = -1, lazy_listen = -1, lazy_client = -1;
static int restored;
static pid_t kill_pid;
static volatile sig_atomic_t stop_requested;
static int go = 1;           /* background requests (and the stall limit) wait for "go" with --wait-go 1 */
static uint64_t total_pages, done_pages, faults, fault_reqs, zero_pages, bytes_in, requests, copy_eagain, copy_enoent;
static double t0;
static double last_rx;       /* the last answer's bytes (or the first request after a quiet spell) */

static double now_ms(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void emit(const char *fmt, ...) {
  va_list ap; va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

static uint64_t remaining(void) {
  uint64_t r = 0;
  for (int i = 0; i < nspaces; i++) if (spaces[i].fd >= 0) r += spaces[i].left;
  return r;
}

static void fail_and_exit(int code, const char *kind, const char *why) {
  if (kill_pid > 0) kill(kill_pid, SIGKILL);
  emit("{\"event\":\"%s\",\"reason\":\"%s\",\"remainingPages\":%" PRIu64 ",\"donePages\":%" PRIu64 ",\"ms\":%.1f,\"killed\":%d}",
       kind, why, remaining(), done_pages, now_ms() - t0, (int)kill_pid);
  exit(code);
}

static void die_errno(const char *what) {
  char why[256];
  snprintf(why, sizeof why, "%s: %s", what, strerror(errno));
  fail_and_exit(1, "error", why);
}

/* ---- segments ---- */

static int seg_cmp(const void *a, const void *b) {
  const seg_t *x = a, *y = b;
  return x->cur < y->cur ? -1 : x->cur > y->cur;
}

static void seg_push(space_t *s, seg_t g) {
  if (s->nsegs == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->segs = realloc(s->segs, sizeof(seg_t) * s->cap);
    if (!s->segs) die_errno("realloc");
  }
  s->segs[s->nsegs++] = g;
}

/* The segment holding addr (sorted by cur), or -1. */
static int seg_find(space_t *s, uint64_t addr) {
  int lo = 0, hi = s->nsegs - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    seg_t *g = &s->segs[mid];
    if (addr < g->cur) hi = mid - 1;
    else if (addr >= g->cur + g->n * PAGE) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/* Makes addr a segment boundary (splitting the segment that holds it). */
static void seg_split(space_t *s, uint64_t addr) {
  int i = seg_find(s, addr);
  if (i < 0 || s->segs[i].cur == addr) return;
  seg_t g = s->segs[i];
  uint64_t k = (addr - g.cur) / PAGE;
  seg_t tail = { g.cur + k * PAGE, g.src + k * PAGE, g.n - k, malloc(g.n - k) };
  if (!tail.st) die_errno("malloc");
  memcpy(tail.st, g.st + k, g.n - k);
  s->segs[i].n = k;
  seg_push(s, tail);
  qsort(s->segs, s->nsegs, sizeof(seg_t), seg_cmp);
}

static uint64_t count_left(seg_t *g) {
  uint64_t c = 0;
  for (uint64_t i = 0; i < g->n; i++) c += g->st[i] != ST_DONE;
  return c;
}

/* Pages in [start, end) no longer need the source's data: unmapped, or dropped (MADV_DONTNEED). */
static void drop_range(space_t *s, uint64_t start, uint64_t end) {
  seg_split(s, start); seg_split(s, end);
  for (int i = 0; i < s->nsegs; i++) {
    seg_t *g = &s->segs[i];
    if (g->cur >= start && g->cur + g->n * PAGE <= end) {
      for (uint64_t p = 0; p < g->n; p++) if (g->st[p] != ST_DONE) { g->st[p] = ST_DONE; s->left--; done_pages++; }
    }
  }
}

/* mremap: the pages at [from, from+len) now live at [to, to+len). */
static void remap_range(space_t *s, uint64_t from, uint64_t to, uint64_t len) {
  seg_split(s, from); seg_split(s, from + len);
  for (int i = 0; i < s->nsegs; i++) {
    seg_t *g = &s->segs[i];
    if (g->cur >= from && g->cur + g->n * PAGE <= from + len) g->cur = g->cur - from + to;
  }
  qsort(s->segs, s->nsegs, sizeof(seg_t), seg_cmp);
  s->cursor_seg = 0; s->cursor_pg = 0;
}

/* ---- the source stream ---- */

static uint8_t outbuf[1 << 16];
static size_t out_len;

static void flush_out(void) {
  while (out_len > 0) {
    ssize_t w = send(src_fd, outbuf, out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      fail_and_exit(3, "lost", "the source connection failed while sending a request");
    }
    memmove(outbuf, outbuf + w, out_len - w);
    out_len -= (size_t)w;
  }
}

static void send_get(int pid, uint64_t vaddr, uint64_t n, int fault) {
  struct psi p = { PS_IOV_GET, 0, n, vaddr, (uint64_t)pid };  /* a GET names the task by its bare pid */
  if (out_len + sizeof p > sizeof outbuf) fail_and_exit(1, "error", "request queue overflow");
  memcpy(outbuf + out_len, &p, sizeof p);
  out_len += sizeof p;
  if (rq_len == rq_cap) {
    req_t *nr = malloc(sizeof(req_t) * (rq_cap ? rq_cap * 2 : 64));
    if (!nr) die_errno("malloc");
    for (int i = 0; i < rq_len; i++) nr[i] = reqs[(rq_head + i) % rq_cap];
    free(reqs); reqs = nr; rq_head = 0; rq_cap = rq_cap ? rq_cap * 2 : 64;
  }
  if (rq_len == 0) last_rx = now_ms();  /* the stall clock starts with the first request outstanding */
  reqs[(rq_head + rq_len) % rq_cap] = (req_t){ pid, vaddr, n, fault };
  rq_len++;
  requests++;
  if (!fault) asked_pages += n;
  flush_out();
}

/* Marks [src, src+n) of every space asking by pid with state `to` (from `from`). */
static void mark_src(int pid, uint64_t src, uint64_t n, int from, int to) {
  for (int i = 0; i < nspaces; i++) {
    space_t *s = &spaces[i];
    if (s->fd < 0 || s->pid != pid) continue;
    for (int j = 0; j < s->nsegs; j++) {
      seg_t *g = &s->segs[j];
      uint64_t a = src > g->src ? src : g->src;
      uint64_t b = src + n * PAGE < g->src + g->n * PAGE ? src + n * PAGE : g->src + g->n * PAGE;
      for (uint64_t x = a; x < b; x += PAGE) {
        uint8_t *st = &g->st[(x - g->src) / PAGE];
        if (*st == from) *st = to;
      }
    }
  }
}

/* The next background request: the first pending run of some space, up to chunk_pages. */
static int next_background(void) {
  for (int k = 0; k < nspaces; k++) {
    space_t *s = &spaces[k];
    if (s->fd < 0 || s->left == 0) continue;
    for (; s->cursor_seg < s->nsegs; s->cursor_seg++, s->cursor_pg = 0) {
      seg_t *g = &s->segs[s->cursor_seg];
      while (s->cursor_pg < g->n && g->st[s->cursor_pg] != ST_PENDING) s->cursor_pg++;
      if (s->cursor_pg == g->n) continue;
      uint64_t first = s->cursor_pg, n = 0;
      while (first + n < g->n && n < chunk_pages && g->st[first + n] == ST_PENDING) n++;
      uint64_t src = g->src + first * PAGE;
      mark_src(s->pid, src, n, ST_PENDING, ST_ASKED);
      send_get(s->pid, src, n, 0);
      s->cursor_pg = first + n;
      return 1;
    }
    /* A pass ended: pages that went back to pending (a clamped answer, EAGAIN) are picked up by the next one. */
    s->cursor_seg = 0; s->cursor_pg = 0;
    for (int j = 0; j < s->nsegs; j++) {
      seg_t *g = &s->segs[j];
      for (uint64_t p = 0; p < g->n; p++) if (g->st[p] == ST_PENDING) goto again;
    }
    continue;
  again:
    k--;  /* rescan this space from its start */
  }
  return 0;
}

static void fill_background(void) {
  while (asked_pages < inflight_pages && rq_len < 4096 && next_background()) {}
}

/* ---- userfaultfd ---- */

static int uffd_zero(space_t *s, uint64_t addr) {
  struct uffdio_zeropage z = { .range = { addr, PAGE }, .mode = 0 };
  if (ioctl(s->fd, UFFDIO_ZEROPAGE, &z) == 0) { zero_pages++; return 0; }
  if (errno == EEXIST) {
    struct uffdio_range r = { addr, PAGE };
    ioctl(s->fd, UFFDIO_WAKE, &r);
    return 0;
  }
  return -errno;
}

static void space_gone(space_t *s, const char *why, int err) {
  /* Before the commit a vanished copy is a failed restore, not a finished one: ending without
   * PS_IOV_CLOSE makes the source's CRIU count the session failed and resume its tree. */
  if (!go) fail_and_exit(1, "error", "a restored process ended before the commit");
  emit("{\"event\":\"gone\",\"pid\":%d,\"leftPages\":%" PRIu64 ",\"why\":\"%s: %s\"}", s->pid, s->left, why, strerror(err));
  done_pages += s->left;
  s->left = 0;
  close(s->fd);
  s->fd = -1;
}

/* Copies the answer's pages into every space that asks by this pid. */
static void place_pages(int pid, uint64_t src, uint64_t n, uint8_t *data) {
  for (int i = 0; i < nspaces; i++) {
    space_t *s = &spaces[i];
    if (s->fd < 0 || s->pid != pid) continue;
    for (int j = 0; j < s->nsegs && s->fd >= 0; j++) {
      seg_t *g = &s->segs[j];
      uint64_t a = src > g->src ? src : g->src;
      uint64_t b = src + n * PAGE < g->src + g->n * PAGE ? src + n * PAGE : g->src + g->n * PAGE;
      uint64_t x = a;
      while (x < b) {
        uint64_t p = (x - g->src) / PAGE;
        if (g->st[p] == ST_DONE) { x += PAGE; continue; }
        uint64_t run = 0;
        while (x + run * PAGE < b && g->st[p + run] != ST_DONE) run++;
        struct uffdio_copy c = { .dst = g->cur + (x - g->src), .src = (uint64_t)(uintptr_t)(data + (x - src)), .len = run * PAGE, .mode = 0 };
        int r = ioctl(s->fd, UFFDIO_COPY, &c);
        if (r == 0 || c.copy > 0) {
          uint64_t got = r == 0 ? run : (uint64_t)c.copy / PAGE;
          if (got == 0) got = 1;
          for (uint64_t q = 0; q < got; q++) { g->st[p + q] = ST_DONE; }
          s->left -= got; done_pages += got;
          x += got * PAGE;
          continue;
        }
        int e = errno;
        if (e == EEXIST) {          /* there already (a zero page we placed): nothing to copy */
          g->st[p] = ST_DONE; s->left--; done_pages++; x += PAGE; continue;
        }
        if (e == EAGAIN) {
          copy_eagain++;
          /* The mapping is changing (an event is on its way): ask for these again later. */
          for (uint64_t q = 0; q < run; q++) if (g->st[p + q] == ST_ASKED) g->st[p + q] = ST_PENDING;
          x += run * PAGE;
          continue;
        }
        if (e == ENOENT) {
          copy_enoent++;
          /* No registered mapping there any more (the program replaced it): nothing can fault on
           * these pages through this handler, so they are done (as CRIU's daemon counts them). */
          g->st[p] = ST_DONE; s->left--; done_pages++; x += PAGE;
          continue;
        }
        if (e == ESRCH || e == ENOSPC) { space_gone(s, "UFFDIO_COPY", e); break; }
        die_errno("UFFDIO_COPY");
      }
    }
  }
}

static void wait_on(space_t *s, uint64_t addr) {
  for (int i = 0; i < s->nwaiting; i++) if (s->waiting[i] == addr) return;
  if (s->nwaiting == s->capwaiting) {
    s->capwaiting = s->capwaiting ? s->capwaiting * 2 : 16;
    s->waiting = realloc(s->waiting, sizeof(uint64_t) * s->capwaiting);
    if (!s->waiting) die_errno("realloc");
  }
  s->waiting[s->nwaiting++] = addr;
}

static void handle_fault(space_t *s, uint64_t addr);

/* Faults still blocked whose pages went back to pending are asked for again; filled ones are forgotten. */
static void recheck_waiting(void) {
  for (int k = 0; k < nspaces; k++) {
    space_t *s = &spaces[k];
    if (s->fd < 0) { s->nwaiting = 0; continue; }
    int n = s->nwaiting;
    uint64_t addrs[n > 0 ? n : 1];
    memcpy(addrs, s->waiting, sizeof(uint64_t) * n);
    s->nwaiting = 0;
    for (int i = 0; i < n; i++) {
      int j = seg_find(s, addrs[i]);
      if (j < 0) continue;
      uint8_t st = s->segs[j].st[(addrs[i] - s->segs[j].cur) / PAGE];
      if (st == ST_DONE) {
        /* Placed (the copy woke it: this only wakes again), or dropped without a copy: a zero page
         * or a wake, so that no thread stays blocked on it. */
        int r = uffd_zero(s, addrs[i]);
        if (r == -ESRCH || r == -ENOSPC) { space_gone(s, "UFFDIO_ZEROPAGE", -r); break; }
        continue;
      }
      if (st == ST_ASKED) { wait_on(s, addrs[i]); continue; }
      faults--;  /* (counted once, when it came) */
      handle_fault(s, addrs[i]);
    }
  }
}

static void handle_fault(space_t *s, uint64_t addr) {
  faults++;
  int i = seg_find(s, addr);
  if (i < 0) {
    int r = uffd_zero(s, addr);
    if (r == -ESRCH || r == -ENOSPC) space_gone(s, "UFFDIO_ZEROPAGE", -r);
    return;
  }
  seg_t *g = &s->segs[i];
  uint64_t p = (addr - g->cur) / PAGE;
  if (g->st[p] == ST_ASKED) { wait_on(s, addr); return; }   /* on its way: the copy wakes the thread */
  if (g->st[p] == ST_DONE) {           /* placed, or dropped since: a zero page, or a wake */
    int r = uffd_zero(s, addr);
    if (r == -ESRCH || r == -ENOSPC) space_gone(s, "UFFDIO_ZEROPAGE", -r);
    return;
  }
  uint64_t n = 0;
  while (p + n < g->n && n < fault_pages && g->st[p + n] == ST_PENDING) n++;
  uint64_t src = g->src + p * PAGE;
  mark_src(s->pid, src, n, ST_PENDING, ST_ASKED);
  fault_reqs++;
  wait_on(s, addr);
  send_get(s->pid, src, n, 1);
}

static void add_space(int fd, int pid, space_t *parent) {
  spaces = realloc(spaces, sizeof(space_t) * (nspaces + 1));
  if (!spaces) die_errno("realloc");
  space_t *s = &spaces[nspaces++];
  memset(s, 0, sizeof *s);
  s->fd = fd; s->pid = pid;
  if (parent) {
    for (int j = 0; j < parent->nsegs; j++) {
      seg_t g = parent->segs[j];
      uint8_t *st = malloc(g.n);
      if (!st) die_errno("malloc");
      memcpy(st, g.st, g.n);
      g.st = st;
      seg_push(s, g);
      s->left += count_left(&g);
    }
    total_pages += s->left;
  } else {
    for (int k = 0; k < nruns; k++) {
      if (runs[k].pid != pid) continue;
      seg_t g = { runs[k].vaddr, runs[k].vaddr, runs[k].n, calloc(runs[k].n, 1) };
      if (!g.st) die_errno("calloc");
      seg_push(s, g);
      s->left += g.n;
    }
    total_pages += s->left;
    qsort(s->segs, s->nsegs, sizeof(seg_t), seg_cmp);
  }
}

static void read_uffd(int idx) {
  for (;;) {
    space_t *s = &spaces[idx];
    if (s->fd < 0) return;
    struct uffd_msg m;
    ssize_t r = read(s->fd, &m, sizeof m);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (errno == ESRCH || errno == EBADF) { space_gone(s, "read", errno); return; }
      die_errno("read(userfaultfd)");
    }
    if (r != sizeof m) return;
    switch (m.event) {
      case UFFD_EVENT_PAGEFAULT: handle_fault(s, m.arg.pagefault.address & ~(PAGE - 1)); break;
      case UFFD_EVENT_FORK: {
        int pid = s->pid;
        int parent = idx;
        add_space((int)m.arg.fork.ufd, pid, NULL);
        /* add_space may move the array: copy the parent's state by index. */
        space_t *child = &spaces[nspaces - 1];
        space_t *par = &spaces[parent];
        total_pages -= child->left;
        for (int j = 0; j < child->nsegs; j++) free(child->segs[j].st);
        free(child->segs); child->segs = NULL; child->nsegs = child->cap = 0; child->left = 0;
        for (int j = 0; j < par->nsegs; j++) {
          seg_t g = par->segs[j];
          uint8_t *st = malloc(g.n);
          if (!st) die_errno("malloc");
          memcpy(st, g.st, g.n); g.st = st;
          seg_push(child, g);
          child->left += count_left(&g);
        }
        total_pages += child->left;
        emit("{\"event\":\"fork\",\"pid\":%d,\"pages\":%" PRIu64 "}", pid, child->left);
        return;  /* the array moved: the caller re-polls */
      }
      case UFFD_EVENT_REMAP: remap_range(s, m.arg.remap.from, m.arg.remap.to, m.arg.remap.len); s->nwaiting = 0; break;
      case UFFD_EVENT_REMOVE:
      case UFFD_EVENT_UNMAP: drop_range(s, m.arg.remove.start, m.arg.remove.end); break;
      default: break;
    }
  }
}

/* ---- the restore's socket ---- */

static void read_lazy_client(void) {
  int32_t pid;
  ssize_t r = recv(lazy_client, &pid, sizeof pid, MSG_WAITALL);
  if (r == 0) {
    close(lazy_client); lazy_client = -1;
    if (!restored) fail_and_exit(1, "error", "the restore closed lazy-pages.socket before it finished");
    return;
  }
  if (r != sizeof pid) die_errno("recv(lazy-pages.socket)");
  if ((uint32_t)pid == RSTF) {
    restored = 1;
    emit("{\"event\":\"restored\",\"ms\":%.1f,\"processes\":%d,\"pages\":%" PRIu64 "}", now_ms() - t0, nspaces, total_pages);
    return;
  }
  if (pid < 0) return;  /* a zombie: no memory */
  char byte;
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = { &byte, 1 };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  r = recvmsg(lazy_client, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
  if (r <= 0) die_errno("recvmsg(lazy-pages.socket)");
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  if (!c || c->cmsg_type != SCM_RIGHTS) fail_and_exit(1, "error", "no userfaultfd came with a pid");
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  add_space(fd, pid, NULL);
  emit("{\"event\":\"uffd\",\"pid\":%d,\"pages\":%" PRIu64 "}", pid, spaces[nspaces - 1].left);
}

/* ---- answers ---- */

static struct psi hdr;
static size_t hdr_got, data_got;
static uint8_t *data;

static void read_source(void) {
  for (;;) {
    ssize_t r;
    if (hdr_got < sizeof hdr) {
      r = recv(src_fd, (uint8_t *)&hdr + hdr_got, sizeof hdr - hdr_got, MSG_DONTWAIT);
    } else {
      r = recv(src_fd, data + data_got, hdr.nr_pages * PAGE - data_got, MSG_DONTWAIT);
    }
    if (r == 0) fail_and_exit(3, "lost", "the source closed the connection");
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      fail_and_exit(3, "lost", "the source connection failed");
    }
    last_rx = now_ms();
    bytes_in += (uint64_t)r;
    if (hdr_got < sizeof hdr) {
      hdr_got += (size_t)r;
      if (hdr_got < sizeof hdr) continue;
      if (rq_len == 0) fail_and_exit(1, "error", "an answer no request asked for");
      req_t *q = &reqs[rq_head];
      if ((hdr.cmd & 0xffff) != PS_IOV_ADD_F || hdr.nr_pages > q->n || hdr.vaddr != q->vaddr || hdr.nr_pages == 0)
        fail_and_exit(1, "error", "the source's answer does not match the request");
      data_got = 0;
      continue;
    }
    data_got += (size_t)r;
    if (data_got < hdr.nr_pages * PAGE) continue;
    req_t q = reqs[rq_head];
    rq_head = (rq_head + 1) % rq_cap; rq_len--;
    if (!q.fault) asked_pages -= q.n;
    place_pages(q.pid, q.vaddr, hdr.nr_pages, data);
    /* Clamped: what was not sent goes back to pending. */
    if (hdr.nr_pages < q.n) mark_src(q.pid, q.vaddr + hdr.nr_pages * PAGE, q.n - hdr.nr_pages, ST_ASKED, ST_PENDING);
    hdr_got = 0; data_got = 0;
    recheck_waiting();
    if (go) fill_background();
  }
}

static void finish(void) {
  struct psi p = { PS_IOV_CLOSE, 0, 0, 0, 0 };
  int fl = fcntl(src_fd, F_GETFL);
  fcntl(src_fd, F_SETFL, fl & ~O_NONBLOCK);
  flush_out();
  if (send(src_fd, &p, sizeof p, MSG_NOSIGNAL) != sizeof p) fail_and_exit(3, "lost", "the source connection failed at the end");
  struct timeval tv = { 5, 0 };
  setsockopt(src_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int32_t status = -1;
  ssize_t r = recv(src_fd, &status, sizeof status, MSG_WAITALL);
  double ms = now_ms() - t0;
  emit("{\"event\":\"done\",\"ms\":%.1f,\"pages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"faults\":%" PRIu64 ",\"faultRequests\":%" PRIu64 ",\"zeroPages\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"copyEagain\":%" PRIu64 ",\"copyEnoent\":%" PRIu64 ",\"processes\":%d,\"closeStatus\":%d}",
       ms, total_pages, bytes_in, faults, fault_reqs, zero_pages, requests, copy_eagain, copy_enoent, nspaces, r == sizeof status ? status : -1);
  /* Every lazy page is in place: closing the userfaultfds hands the memory back to the kernel. */
  for (int i = 0; i < nspaces; i++) if (spaces[i].fd >= 0) close(spaces[i].fd);
  exit(0);
}

/* ---- set-up ---- */

static void read_runs(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) die_errno("open --lazy");
  int pid; unsigned long long va, n;
  while (fscanf(f, "%d %llx %llu", &pid, &va, &n) == 3) {
    runs = realloc(runs, sizeof(run_t) * (nruns + 1));
    if (!runs) die_errno("realloc");
    runs[nruns++] = (run_t){ pid, va, n };
  }
  fclose(f);
}

static int connect_to(const char *hostport) {
  char host[128];
  const char *colon = strrchr(hostport, ':');
  if (!colon || (size_t)(colon - hostport) >= sizeof host) return -1;
  memcpy(host, hostport, colon - hostport); host[colon - hostport] = 0;
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { close(fd); return -1; }
  return fd;
}

static void on_term(int sig) { (void)sig; stop_requested = 1; }

/* Commands, a line each: "kill PID" (the process to end should the source be lost), "go". */
static int read_stdin(void) {
  char buf[256];
  ssize_t r = read(0, buf, sizeof buf - 1);
  if (r <= 0) return 0;
  buf[r] = 0;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    int pid;
    if (sscanf(line, "kill %d", &pid) == 1 && pid > 1) kill_pid = pid;
    else if (!strcmp(line, "go")) go = 1;
  }
  return 1;
}

int main(int argc, char **argv) {
  const char *dir = NULL, *lazy = NULL, *connect_addr = NULL;
  int source_fd = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "ferry-uffd: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--dir")) dir = v;
    else if (!strcmp(a, "--lazy")) lazy = v;
    else if (!strcmp(a, "--source-fd")) source_fd = atoi(v);
    else if (!strcmp(a, "--connect")) connect_addr = v;
    else if (!strcmp(a, "--chunk-pages")) chunk_pages = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--inflight-pages")) inflight_pages = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--fault-pages")) fault_pages = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--stall-ms")) stall_ms = atol(v);
    else if (!strcmp(a, "--progress-ms")) progress_ms = atol(v);
    else if (!strcmp(a, "--wait-go")) { go = !atoi(v); }
    else { fprintf(stderr, "ferry-uffd: unknown option %s\n", a); return 2; }
    i++;
  }
  if (!dir || !lazy || (source_fd < 0 && !connect_addr) || chunk_pages == 0 || fault_pages == 0) {
    fprintf(stderr, "usage: ferry-uffd --dir WORKDIR --lazy FILE (--source-fd N | --connect ADDR:PORT) [--chunk-pages N] [--inflight-pages N] [--fault-pages N] [--stall-ms N] [--progress-ms N]\n");
    return 2;
  }
  if (chunk_pages > 1024) chunk_pages = 1024;   /* the source's pipes hold at most 4 MiB */
  if (fault_pages > chunk_pages) fault_pages = chunk_pages;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = { .sa_handler = on_term };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  t0 = now_ms();
  read_runs(lazy);
  data = mmap(NULL, 1024 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) die_errno("mmap");

  /* The socket the restore connects to (a path relative to its work dir, as CRIU's daemon binds it). */
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  if (snprintf(un.sun_path, sizeof un.sun_path, "%s/lazy-pages.socket", dir) >= (int)sizeof un.sun_path)
    fail_and_exit(2, "error", "the work dir's path is too long for a unix socket");
  unlink(un.sun_path);
  lazy_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lazy_listen < 0 || bind(lazy_listen, (struct sockaddr *)&un, sizeof un) < 0 || listen(lazy_listen, 4) < 0) die_errno("lazy-pages.socket");
  emit("{\"event\":\"listening\",\"socket\":\"%s\"}", un.sun_path);

  src_fd = source_fd >= 0 ? source_fd : connect_to(connect_addr);
  if (src_fd < 0) fail_and_exit(3, "lost", "cannot connect to the source");
  fcntl(src_fd, F_SETFL, fcntl(src_fd, F_GETFL) | O_NONBLOCK);
  int one = 1;
  setsockopt(src_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rcv = 8 << 20;
  setsockopt(src_fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);

  double last_progress = 0;
  last_rx = now_ms();
  int stdin_open = 1;
  for (;;) {
    if (stop_requested) fail_and_exit(1, "error", "stopped (SIGTERM)");
    /* (Only after the commit: a clean end lets the source's CRIU end its tree.) */
    if (restored && go && remaining() == 0 && rq_len == 0) finish();
    int n = 0;
    struct pollfd pf[4 + nspaces];
    int idx[4 + nspaces];
    if (lazy_listen >= 0) { pf[n] = (struct pollfd){ lazy_listen, POLLIN, 0 }; idx[n++] = -1; }
    if (lazy_client >= 0) { pf[n] = (struct pollfd){ lazy_client, POLLIN, 0 }; idx[n++] = -2; }
    pf[n] = (struct pollfd){ src_fd, POLLIN | (out_len ? POLLOUT : 0), 0 }; idx[n++] = -3;
    if (stdin_open) { pf[n] = (struct pollfd){ 0, POLLIN, 0 }; idx[n++] = -4; }
    for (int i = 0; i < nspaces; i++) if (spaces[i].fd >= 0) { pf[n] = (struct pollfd){ spaces[i].fd, POLLIN, 0 }; idx[n++] = i; }
    int r = poll(pf, n, 100);
    if (r < 0 && errno != EINTR) die_errno("poll");
    double t = now_ms();
    if (rq_len > 0 && t - last_rx > stall_ms) fail_and_exit(3, "lost", "the source sent nothing for the stall limit");
    if (progress_ms > 0 && t - last_progress >= progress_ms) {
      last_progress = t;
      emit("{\"event\":\"progress\",\"ms\":%.1f,\"donePages\":%" PRIu64 ",\"totalPages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"faults\":%" PRIu64 ",\"copyEagain\":%" PRIu64 ",\"copyEnoent\":%" PRIu64 "}",
           t - t0, done_pages, total_pages, bytes_in, faults, copy_eagain, copy_enoent);
    }
    if (r <= 0) continue;
    for (int i = 0; i < n; i++) {
      if (!pf[i].revents) continue;
      switch (idx[i]) {
        case -1: {
          lazy_client = accept4(lazy_listen, NULL, NULL, SOCK_CLOEXEC);
          if (lazy_client < 0) die_errno("accept(lazy-pages.socket)");
          close(lazy_listen); lazy_listen = -1;
          unlink(un.sun_path);
          break;
        }
        case -2: read_lazy_client(); break;
        case -3:
          if (pf[i].revents & POLLOUT) flush_out();
          if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) read_source();
          break;
        case -4: {
          int was = go;
          if (!read_stdin()) stdin_open = 0;
          if (go && !was) last_rx = now_ms();
          break;
        }
        default:
          read_uffd(idx[i]);
          break;
      }
    }
    if (go) fill_background();
  }
}
