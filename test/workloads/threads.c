/*
 * threads: a self-verifying multi-threaded workload for checkpoint/restore tests.
 *
 *   threads --status DIR [--threads N] [--interval-us U]
 *
 * N worker threads (default 4) each count in their own counter, one step every U microseconds
 * (default 1000), and check themselves at every step: the counter must hold exactly what the
 * thread last stored (a shadow copy keeps its complement), the thread's kernel tid and name must
 * not change. The main thread only waits for SIGUSR1 (blocked in every thread, taken with
 * sigtimedwait) and then verifies:
 *   - every worker is alive (pthread_kill 0, tgkill 0) and the process has exactly N+1 tasks;
 *   - no counter went backwards since the previous verification, and each moved past it;
 *   - every counter advances again within 2 s (each thread runs now);
 *   - no thread reported an inconsistency.
 * Same status protocol as memcheck.c: DIR/ready, DIR/verdict ("ok ... instance=ID" / "fail ..."),
 * DIR/progress, each written to a temporary file, closed and renamed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

struct worker {
	pthread_t thread;
	int index;
	_Atomic pid_t tid;
	_Atomic uint64_t counter;
	_Atomic uint64_t shadow;      /* always ~counter */
	_Atomic int failed;
	char error[160];
	uint64_t last_verified;       /* main thread only */
};

static const char *status_dir;
static struct worker workers[MAX_THREADS];
static int nthreads = 4;
static long interval_us = 1000;
static uint64_t incarnation; /* random per start, reported in ready and verdicts */

static void write_status(const char *name, const char *fmt, ...)
{
	char path[PATH_MAX], tmp[PATH_MAX], buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	snprintf(path, sizeof(path), "%s/%s", status_dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", status_dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "threads: cannot write %s: %s\n", tmp, strerror(errno));
		return;
	}
	ssize_t w = write(fd, buf, (size_t)len);
	if (close(fd) != 0 || w != len || rename(tmp, path) != 0)
		fprintf(stderr, "threads: cannot write %s: %s\n", path, strerror(errno));
}

static void worker_fail(struct worker *w, const char *fmt, ...)
{
	if (atomic_load(&w->failed))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
	atomic_store(&w->failed, 1);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16], want[16];
	snprintf(want, sizeof(want), "worker-%d", w->index);
	prctl(PR_SET_NAME, want, 0, 0, 0);
	pid_t tid = (pid_t)syscall(SYS_gettid);
	atomic_store(&w->tid, tid);
	uint64_t mine = 0; /* the thread's own idea of its count, on its stack */
	struct timespec pause = { .tv_sec = interval_us / 1000000, .tv_nsec = (interval_us % 1000000) * 1000 };
	for (;;) {
		uint64_t c = atomic_load(&w->counter), s = atomic_load(&w->shadow);
		if (c != mine || s != ~mine)
			worker_fail(w, "worker %d: counter %" PRIu64 " / shadow %#" PRIx64 ", expected %" PRIu64, w->index, c, s, mine);
		mine++;
		atomic_store(&w->shadow, ~mine);
		atomic_store(&w->counter, mine);
		if ((mine & 255) == 0) {
			if ((pid_t)syscall(SYS_gettid) != tid)
				worker_fail(w, "worker %d: tid changed from %d", w->index, (int)tid);
			if (prctl(PR_GET_NAME, name, 0, 0, 0) == 0 && strcmp(name, want) != 0)
				worker_fail(w, "worker %d: name changed to '%s'", w->index, name);
		}
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static uint64_t total(void)
{
	uint64_t sum = 0;
	for (int i = 0; i < nthreads; i++)
		sum += atomic_load(&workers[i].counter);
	return sum;
}

static void verify(void)
{
	uint64_t start[MAX_THREADS];
	pid_t pid = getpid();
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];
		int err = pthread_kill(w->thread, 0);
		if (err) {
			write_status("verdict", "fail worker %d is gone: pthread_kill: %s", i, strerror(err));
			return;
		}
		if (syscall(SYS_tgkill, pid, atomic_load(&w->tid), 0) != 0) {
			write_status("verdict", "fail worker %d (tid %d) is gone: tgkill: %s", i, (int)atomic_load(&w->tid), strerror(errno));
			return;
		}
		start[i] = atomic_load(&w->counter);
		if (start[i] < w->last_verified) {
			write_status("verdict", "fail worker %d went backwards: %" PRIu64 " < %" PRIu64 " at the previous verification",
				     i, start[i], w->last_verified);
			return;
		}
		if (w->last_verified && start[i] == w->last_verified) {
			write_status("verdict", "fail worker %d did not advance since the previous verification (%" PRIu64 ")", i, start[i]);
			return;
		}
	}
	int tasks = count_tasks();
	if (tasks != nthreads + 1) {
		write_status("verdict", "fail the process has %d tasks, expected %d", tasks, nthreads + 1);
		return;
	}
	/* Every thread must run now: its counter moves within 2 s. */
	uint64_t until = now_ms() + 2000;
	for (int i = 0; i < nthreads; i++) {
		while (atomic_load(&workers[i].counter) == start[i]) {
			if (now_ms() > until) {
				write_status("verdict", "fail worker %d is stuck at %" PRIu64, i, start[i]);
				return;
			}
			usleep(1000);
		}
	}
	for (int i = 0; i < nthreads; i++) {
		if (atomic_load(&workers[i].failed)) {
			write_status("verdict", "fail %s", workers[i].error);
			return;
		}
	}
	uint64_t min = UINT64_MAX;
	for (int i = 0; i < nthreads; i++) {
		workers[i].last_verified = start[i];
		if (start[i] < min)
			min = start[i];
	}
	write_status("verdict", "ok threads=%d tasks=%d min_counter=%" PRIu64 " progress=%" PRIu64 " instance=%016" PRIx64,
		     nthreads, tasks, min, total(), incarnation);
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--status"))
			status_dir = argv[i + 1];
		else if (!strcmp(argv[i], "--threads"))
			nthreads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--interval-us"))
			interval_us = atol(argv[i + 1]);
		else {
			fprintf(stderr, "threads: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!status_dir || nthreads < 1 || nthreads > MAX_THREADS || interval_us < 1) {
		fprintf(stderr, "usage: threads --status DIR [--threads 1..%d] [--interval-us U]\n", MAX_THREADS);
		return 2;
	}

	/* SIGUSR1 is blocked everywhere (workers inherit the mask); the main thread takes it. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	for (int i = 0; i < nthreads; i++) {
		workers[i].index = i;
		atomic_store(&workers[i].shadow, ~(uint64_t)0);
		int err = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (err) {
			fprintf(stderr, "threads: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	for (int i = 0; i < nthreads; i++)
		while (atomic_load(&workers[i].tid) == 0 || atomic_load(&workers[i].counter) == 0)
			usleep(1000);
	if (getrandom(&incarnation, sizeof(incarnation), 0) != sizeof(incarnation))
		incarnation = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
	write_status("ready", "ok threads=%d interval_us=%ld instance=%016" PRIx64, nthreads, interval_us, incarnation);

	struct timespec wait = { .tv_sec = 1, .tv_nsec = 0 };
	for (;;) {
		int sig = sigtimedwait(&set, NULL, &wait);
		if (sig == SIGUSR1)
			verify();
		write_status("progress", "%" PRIu64, total());
	}
}
