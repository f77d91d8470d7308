/*
 * memcheck: a self-verifying memory workload for checkpoint/restore tests and benchmarks.
 *
 *   memcheck --mib N --seed S --status DIR [--rate PAGES_PER_SEC]
 *   memcheck --mib N --seed S --status DIR --dirty-percent P --dirty-every-ms T
 *   memcheck --mib N --seed S --status DIR --dirty-percent P --dirty-every-ms 0
 *
 * It maps N MiB of anonymous memory and fills every 4 KiB page with a pseudo-random pattern
 * derived from (seed, page index, page version). A version array remembers which pattern each
 * page must hold. Then it keeps mutating: it picks pages pseudo-randomly, bumps their version
 * and rewrites them, at --rate pages per second (default 1000; 0 = as fast as it can). In dirty
 * mode it instead rewrites about P% of the pages (all distinct) in one burst every T ms and idles
 * in between, so that consecutive snapshots differ by about P% of the pages. With
 * --dirty-every-ms 0 a burst happens only on SIGUSR2, and DIR/dirtied then holds the number of
 * bursts done so far (deterministic dedup benchmarks: signal, wait for the count, checkpoint).
 *
 * Protocol (shared by every ferry test workload):
 *   DIR/ready     written once the memory is filled: "ok base=0x... pages=N ... instance=ID"
 *                 (ID: random per start; a restored process reports the same, a restarted one not)
 *   SIGUSR1       verify every byte of every page against the pattern of its version, and
 *                 that the versions add up to the number of mutations; then write
 *   DIR/verdict   "ok <summary> instance=ID" or "fail <reason>"
 *   DIR/progress  the mutation count, now and then
 * Every file is written to a temporary name, closed, then renamed: no file of the status
 * directory is ever held open (CRIU restores open files by path and checks their size).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096u
#define WORDS_PER_PAGE (PAGE_SIZE / sizeof(uint64_t))

static volatile sig_atomic_t verify_requested;
static volatile sig_atomic_t dirty_requested;

static const char *status_dir;
static uint64_t *mem;         /* the checked memory */
static uint32_t *versions;    /* version of every page */
static size_t npages;
static uint64_t seed;
static uint64_t mutations;    /* total version bumps; equals the sum of versions */
static uint64_t picker;       /* xorshift state choosing pages to mutate */
static uint64_t verifications;
static uint64_t incarnation; /* random per start: a restored process keeps it, a restarted one does not */

static void on_usr1(int sig)
{
	(void)sig;
	verify_requested = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	dirty_requested = 1;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "memcheck: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* The first state of the stream of page `page` at version `version` (never 0). */
static uint64_t page_stream(uint64_t page, uint32_t version)
{
	uint64_t s = splitmix64(seed ^ splitmix64((page << 32) ^ version ^ 0x6d656d636865636bull));
	return s ? s : 1;
}

/*
 * The pattern: four interleaved xorshift64 streams (independent, so the CPU overlaps them),
 * each word also mixed with its index so that a page shifted in place does not pass.
 */
static void fill_page(uint64_t page, uint32_t version)
{
	uint64_t *p = mem + page * WORDS_PER_PAGE;
	uint64_t s0 = page_stream(page, version), s1 = s0 ^ 0x1111111111111111ull,
		 s2 = s0 ^ 0x2222222222222222ull, s3 = s0 ^ 0x4444444444444444ull;
	for (size_t i = 0; i < WORDS_PER_PAGE; i += 4) {
		p[i] = xorshift64(&s0) + i;
		p[i + 1] = xorshift64(&s1) + i;
		p[i + 2] = xorshift64(&s2) + i;
		p[i + 3] = xorshift64(&s3) + i;
	}
}

/* Returns the index of the first bad byte of the page, or -1 when the page is right. */
static long check_page(uint64_t page, uint32_t version)
{
	const uint64_t *p = mem + page * WORDS_PER_PAGE;
	uint64_t s0 = page_stream(page, version), s1 = s0 ^ 0x1111111111111111ull,
		 s2 = s0 ^ 0x2222222222222222ull, s3 = s0 ^ 0x4444444444444444ull;
	uint64_t expect[4];
	for (size_t i = 0; i < WORDS_PER_PAGE; i += 4) {
		expect[0] = xorshift64(&s0) + i;
		expect[1] = xorshift64(&s1) + i;
		expect[2] = xorshift64(&s2) + i;
		expect[3] = xorshift64(&s3) + i;
		if ((p[i] ^ expect[0]) | (p[i + 1] ^ expect[1]) | (p[i + 2] ^ expect[2]) | (p[i + 3] ^ expect[3])) {
			const unsigned char *got = (const unsigned char *)(p + i), *want = (const unsigned char *)expect;
			for (size_t b = 0; b < sizeof(expect); b++)
				if (got[b] != want[b])
					return (long)(i * sizeof(uint64_t) + b);
		}
	}
	return -1;
}

/* Writes DIR/name atomically: tmp file, close, rename. */
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
		fprintf(stderr, "memcheck: cannot write %s: %s\n", tmp, strerror(errno));
		return;
	}
	ssize_t w = write(fd, buf, (size_t)len);
	if (close(fd) != 0 || w != len || rename(tmp, path) != 0)
		fprintf(stderr, "memcheck: cannot write %s: %s\n", path, strerror(errno));
}

static void mutate_page(uint64_t page)
{
	versions[page]++;
	mutations++;
	fill_page(page, versions[page]);
}

static void verify(void)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	size_t bad = 0, first_bad = 0;
	long first_byte = -1;
	uint64_t sum = 0;
	for (size_t page = 0; page < npages; page++) {
		sum += versions[page];
		long b = check_page(page, versions[page]);
		if (b >= 0) {
			if (bad++ == 0) {
				first_bad = page;
				first_byte = b;
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	verifications++;
	if (bad) {
		write_status("verdict", "fail bad_pages=%zu first_bad_page=%zu first_bad_addr=%p first_bad_byte=%ld version=%" PRIu32 " pages=%zu progress=%" PRIu64,
			     bad, first_bad, (void *)((char *)mem + first_bad * PAGE_SIZE + (size_t)first_byte), first_byte,
			     versions[first_bad], npages, mutations);
	} else if (sum != mutations) {
		write_status("verdict", "fail version array sums to %" PRIu64 " but %" PRIu64 " mutations were made", sum, mutations);
	} else {
		write_status("verdict", "ok pages=%zu bad_pages=0 progress=%" PRIu64 " verify_ms=%ld verifications=%" PRIu64 " instance=%016" PRIx64,
			     npages, mutations, ms, verifications, incarnation);
	}
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Sleeps until `deadline` (CLOCK_MONOTONIC ns), returning early when a signal arrives. */
static void sleep_until(uint64_t deadline)
{
	struct timespec t = { .tv_sec = (time_t)(deadline / 1000000000ull), .tv_nsec = (long)(deadline % 1000000000ull) };
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* Rewrites `count` distinct pages: an arithmetic walk with a stride coprime to npages. */
static void dirty_burst(size_t count)
{
	uint64_t start = xorshift64(&picker) % npages;
	uint64_t stride = 1;
	if (npages > 2) {
		do
			stride = 1 + xorshift64(&picker) % (npages - 1);
		while (gcd(stride, npages) != 1);
	}
	for (size_t i = 0; i < count; i++)
		mutate_page((start + i * stride) % npages);
}

static unsigned long parse_num(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 0);
	if (errno || *end || end == v)
		die("%s needs a number, got '%s'", opt, v);
	return (unsigned long)n;
}

int main(int argc, char **argv)
{
	unsigned long mib = 0, rate = 1000, dirty_percent = 0, dirty_every_ms = 0;
	int have_seed = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			die("usage: memcheck --mib N --seed S --status DIR [--rate PAGES_PER_SEC] [--dirty-percent P --dirty-every-ms T]");
		const char *v = argv[++i];
		if (!strcmp(a, "--mib"))
			mib = parse_num(a, v);
		else if (!strcmp(a, "--seed")) {
			seed = parse_num(a, v);
			have_seed = 1;
		} else if (!strcmp(a, "--status"))
			status_dir = v;
		else if (!strcmp(a, "--rate"))
			rate = parse_num(a, v);
		else if (!strcmp(a, "--dirty-percent"))
			dirty_percent = parse_num(a, v);
		else if (!strcmp(a, "--dirty-every-ms"))
			dirty_every_ms = parse_num(a, v);
		else
			die("unknown option %s", a);
	}
	if (!mib || !have_seed || !status_dir)
		die("--mib, --seed and --status are required");
	if (dirty_percent > 100)
		die("--dirty-percent must be 0..100");
	int dirty_on_signal = 0;
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--dirty-every-ms") && !strcmp(argv[i + 1], "0"))
			dirty_on_signal = 1;
	if (dirty_percent && !dirty_every_ms && !dirty_on_signal)
		die("--dirty-percent needs --dirty-every-ms (0: a burst per SIGUSR2)");

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a request cuts the sleep short */
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		die("sigaction: %s", strerror(errno));
	sa.sa_handler = on_usr2;
	if (sigaction(SIGUSR2, &sa, NULL) != 0)
		die("sigaction: %s", strerror(errno));

	npages = (size_t)mib * (1024 * 1024 / PAGE_SIZE);
	uint64_t t0 = now_ns();
	/* MAP_POPULATE: faulting 1 GiB in page by page is slow and erratic on these VMs. */
	mem = mmap(NULL, npages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	versions = mmap(NULL, npages * sizeof(*versions), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || versions == MAP_FAILED)
		die("cannot map %lu MiB: %s", mib, strerror(errno));

	for (size_t page = 0; page < npages; page++)
		fill_page(page, 0);
	uint64_t fill_ms = (now_ns() - t0) / 1000000;
	picker = splitmix64(seed ^ 0x7069636b6572ull) | 1;

	if (getrandom(&incarnation, sizeof(incarnation), 0) != sizeof(incarnation))
		incarnation = splitmix64(now_ns() ^ (uint64_t)getpid());
	write_status("ready", "ok base=%p pages=%zu page_size=%u mib=%lu seed=%" PRIu64 " fill_ms=%" PRIu64 " mode=%s instance=%016" PRIx64,
		     (void *)mem, npages, PAGE_SIZE, mib, seed, fill_ms, dirty_percent ? "dirty" : "rate", incarnation);

	const uint64_t tick_ns = 10 * 1000000ull; /* rate mode works in 10 ms ticks */
	uint64_t next = now_ns(), last_progress = 0;
	double carry = 0;
	uint64_t bursts = 0;
	size_t burst = dirty_percent ? (size_t)((npages * dirty_percent + 99) / 100) : 0;
	for (;;) {
		if (verify_requested) {
			verify_requested = 0;
			verify();
		}
		uint64_t now = now_ns();
		if (now - last_progress >= 1000000000ull) {
			write_status("progress", "%" PRIu64, mutations);
			last_progress = now;
		}
		if (dirty_percent && dirty_on_signal) {
			if (dirty_requested) {
				dirty_requested = 0;
				dirty_burst(burst);
				bursts++;
				write_status("dirtied", "%" PRIu64, bursts);
			}
			/* a signal cuts the sleep short */
			sleep_until(now + 1000000000ull);
		} else if (dirty_percent) {
			/* A clock that jumped back (restored on another host) must not stall the loop. */
			if (next > now + dirty_every_ms * 1000000ull)
				next = now;
			if (now >= next) {
				dirty_burst(burst);
				next = now + dirty_every_ms * 1000000ull;
			}
			sleep_until(next);
		} else if (rate == 0) {
			for (int i = 0; i < 256; i++)
				mutate_page(xorshift64(&picker) % npages);
		} else {
			if (next > now + tick_ns)
				next = now;
			if (now >= next) {
				/* Pages due in this tick; after a long stop (a checkpoint) do not catch up. */
				if (now - next > 100 * tick_ns)
					next = now;
				carry += (double)rate * (double)tick_ns / 1e9;
				size_t n = (size_t)carry;
				carry -= (double)n;
				for (size_t i = 0; i < n; i++)
					mutate_page(xorshift64(&picker) % npages);
				next += tick_ns;
			}
			sleep_until(next);
		}
	}
}
