/* libc.c - the few libc services the allocator needs, written so that they
 * never allocate: formatting (printf may malloc), environment lookup before
 * the C runtime is up, a clock, a lock, and the fatal-error path.
 *
 * May call: write(2), clock_gettime (vDSO), futex(2), sched_getaffinity(2),
 * abort(). Nothing else.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "memkit/internal.h"

/* ------------------------------------------------------------ formatting */

struct out {
	char *buf;
	size_t size, len; /* len counts what would have been written */
};

static void out_char(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void out_str(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out_char(o, s[i]);
}

static void out_pad(struct out *o, char c, int n)
{
	while (n-- > 0)
		out_char(o, c);
}

/* digits of v in base, most significant first; returns their count */
static int utoa(char *tmp, unsigned long long v, unsigned base)
{
	static const char digits[] = "0123456789abcdef";
	char rev[24];
	int n = 0;
	do {
		rev[n++] = digits[v % base];
		v /= base;
	} while (v);
	for (int i = 0; i < n; i++)
		tmp[i] = rev[n - 1 - i];
	return n;
}

struct spec {
	int width, prec;
	bool zero, left;
	int lng; /* 0 int, 1 long, 2 long long / size_t */
};

static void out_number(struct out *o, const struct spec *sp, unsigned long long v, bool neg,
		       unsigned base, const char *prefix)
{
	char tmp[24];
	int n = utoa(tmp, v, base);
	int plen = (int)strlen(prefix) + (neg ? 1 : 0);
	int pad = sp->width - n - plen;
	if (!sp->left && !sp->zero)
		out_pad(o, ' ', pad);
	if (neg)
		out_char(o, '-');
	out_str(o, prefix, strlen(prefix));
	if (!sp->left && sp->zero)
		out_pad(o, '0', pad);
	out_str(o, tmp, (size_t)n);
	if (sp->left)
		out_pad(o, ' ', pad);
}

static void out_double(struct out *o, const struct spec *sp, double d)
{
	int prec = sp->prec < 0 ? 6 : (sp->prec > 9 ? 9 : sp->prec);
	bool neg = d < 0;
	if (neg)
		d = -d;
	if (d != d || d > 1e18) { /* NaN or too big for this formatter */
		out_str(o, "nan", 3);
		return;
	}
	unsigned long long scale = 1;
	for (int i = 0; i < prec; i++)
		scale *= 10;
	unsigned long long fixed = (unsigned long long)(d * (double)scale + 0.5);
	unsigned long long ip = fixed / scale, fp = fixed % scale;
	char tmp[24];
	int n = utoa(tmp, ip, 10);
	int pad = sp->width - n - (neg ? 1 : 0) - (prec ? prec + 1 : 0);
	if (!sp->left)
		out_pad(o, ' ', pad);
	if (neg)
		out_char(o, '-');
	out_str(o, tmp, (size_t)n);
	if (prec) {
		out_char(o, '.');
		char ftmp[24];
		int fn = utoa(ftmp, fp, 10);
		out_pad(o, '0', prec - fn);
		out_str(o, ftmp, (size_t)fn);
	}
	if (sp->left)
		out_pad(o, ' ', pad);
}

/* clang-analyzer's valist checker takes a va_list reached through a pointer
 * for an uninitialised one when it starts at these helpers; every caller
 * passes mki_vsnprintf's va_copy. */
/* NOLINTBEGIN(clang-analyzer-valist.Uninitialized) */
static const char *parse_spec(const char *f, struct spec *sp, va_list *ap)
{
	memset(sp, 0, sizeof(*sp));
	sp->prec = -1;
	for (;; f++) {
		if (*f == '0')
			sp->zero = true;
		else if (*f == '-')
			sp->left = true;
		else
			break;
	}
	if (*f == '*') {
		sp->width = va_arg(*ap, int);
		f++;
	}
	while (*f >= '0' && *f <= '9')
		sp->width = sp->width * 10 + (*f++ - '0');
	if (*f == '.') {
		f++;
		sp->prec = 0;
		if (*f == '*') {
			sp->prec = va_arg(*ap, int);
			f++;
		}
		while (*f >= '0' && *f <= '9')
			sp->prec = sp->prec * 10 + (*f++ - '0');
	}
	while (*f == 'l' || *f == 'z' || *f == 'j') {
		sp->lng += (*f == 'l') ? 1 : 2;
		f++;
	}
	return f;
}

static unsigned long long arg_unsigned(const struct spec *sp, va_list *ap)
{
	if (sp->lng >= 2)
		return va_arg(*ap, unsigned long long);
	if (sp->lng == 1)
		return va_arg(*ap, unsigned long);
	return va_arg(*ap, unsigned);
}

static long long arg_signed(const struct spec *sp, va_list *ap)
{
	if (sp->lng >= 2)
		return va_arg(*ap, long long);
	if (sp->lng == 1)
		return va_arg(*ap, long);
	return va_arg(*ap, int);
}

static void out_string(struct out *o, const struct spec *sp, const char *s)
{
	if (!s)
		s = "(null)";
	size_t n = strlen(s);
	if (sp->prec >= 0 && (size_t)sp->prec < n)
		n = (size_t)sp->prec;
	if (!sp->left)
		out_pad(o, ' ', sp->width - (int)n);
	out_str(o, s, n);
	if (sp->left)
		out_pad(o, ' ', sp->width - (int)n);
}

static void out_conversion(struct out *o, char conv, const struct spec *sp, va_list *ap)
{
	switch (conv) {
	case 'd':
	case 'i': {
		long long v = arg_signed(sp, ap);
		unsigned long long mag =
		    v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
		out_number(o, sp, mag, v < 0, 10, "");
		break;
	}
	case 'u':
		out_number(o, sp, arg_unsigned(sp, ap), false, 10, "");
		break;
	case 'x':
		out_number(o, sp, arg_unsigned(sp, ap), false, 16, "");
		break;
	case 'p':
		out_number(o, sp, (uintptr_t)va_arg(*ap, void *), false, 16, "0x");
		break;
	case 's':
		out_string(o, sp, va_arg(*ap, const char *));
		break;
	case 'c':
		out_char(o, (char)va_arg(*ap, int));
		break;
	case 'f':
		out_double(o, sp, va_arg(*ap, double));
		break;
	case '%':
		out_char(o, '%');
		break;
	default: /* unknown: print it as written */
		out_char(o, '%');
		out_char(o, conv);
	}
}

/* NOLINTEND(clang-analyzer-valist.Uninitialized) */

int mki_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};
	va_list cp;
	va_copy(cp, ap);
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			out_char(&o, *f);
			continue;
		}
		struct spec sp;
		f = parse_spec(f + 1, &sp, &cp);
		if (!*f)
			break;
		out_conversion(&o, *f, &sp, &cp);
	}
	va_end(cp);
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return o.len > INT_MAX ? INT_MAX : (int)o.len;
}

int mki_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = mki_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int mki_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int mki_dprintf(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = mki_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
	return mki_write_all(fd, buf, len);
}

void mki_fatal(const char *fmt, ...)
{
	char buf[512];
	int saved = errno;
	size_t len = (size_t)mki_snprintf(buf, sizeof(buf), "memkit: ");
	va_list ap;
	va_start(ap, fmt);
	mki_vsnprintf(buf + len, sizeof(buf) - len - 1, fmt, ap);
	va_end(ap);
	len = strlen(buf);
	buf[len++] = '\n';
	mki_write_all(STDERR_FILENO, buf, len);
	errno = saved;
	abort();
}

/* ------------------------------------------------------------ environment */

extern char **environ;

const char *mki_getenv(const char *name)
{
	size_t n = strlen(name);
	for (char **e = environ; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

uint64_t mki_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The CPUs this process may run on, counted once: sysconf would read
 * /sys through stdio, which may allocate. */
unsigned mki_cpu_count(void)
{
	static _Atomic unsigned count;
	unsigned n = atomic_load_explicit(&count, memory_order_relaxed);
	if (n)
		return n;
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
	long bytes = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
	for (long i = 0; i < bytes / (long)sizeof(mask[0]); i++)
		n += (unsigned)__builtin_popcountl(mask[i]);
	n = n ? n : 1;
	atomic_store_explicit(&count, n, memory_order_relaxed);
	return n;
}

bool mki_clock_due(_Atomic uint64_t *last, uint64_t period_ms)
{
	uint64_t now = mki_clock_ms(), then = atomic_load_explicit(last, memory_order_relaxed);
	return now - then >= period_ms &&
	       atomic_compare_exchange_strong_explicit(last, &then, now, memory_order_relaxed,
						       memory_order_relaxed);
}

/* ------------------------------------------------------------ lock
 * Drepper's "futexes are tricky" mutex 2, with the holder's thread id as the
 * locked value: 0 free, tid held, tid|WAITERS held with sleepers. Taking the
 * lock and recording who holds it are one CAS, so a signal handler can
 * always tell whether its own thread was inside (see mki_lock_before_fork).
 * A short spin first: the critical sections it guards are short. */

static long futex(_Atomic int *addr, int op, int val)
{
	return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static __thread int tls_tid __attribute__((tls_model("initial-exec")));

static int self_id(void)
{
	int t = tls_tid;
	if (mki_unlikely(!t))
		t = tls_tid = (int)syscall(SYS_gettid);
	return t;
}

void mki_lock_fork_child_self(void)
{
	tls_tid = 0;
}

bool mki_trylock(mki_lock_t *l)
{
	int expect = 0;
	return atomic_compare_exchange_strong_explicit(&l->state, &expect, self_id(),
						       memory_order_acquire, memory_order_relaxed);
}

void mki_lock(mki_lock_t *l)
{
	int me = self_id();
	for (int spin = 0; spin < 100; spin++) {
		int expect = 0;
		if (atomic_compare_exchange_weak_explicit(
			&l->state, &expect, me, memory_order_acquire, memory_order_relaxed))
			return;
		mki_cpu_relax();
	}
	for (;;) {
		int c = atomic_load_explicit(&l->state, memory_order_relaxed);
		if (c == 0) {
			/* we may have slept: others may sleep too, keep the mark */
			if (atomic_compare_exchange_weak_explicit(
				&l->state, &c, me | MKI_LOCK_WAITERS, memory_order_acquire,
				memory_order_relaxed))
				return;
			continue;
		}
		if (!(c & MKI_LOCK_WAITERS) && !atomic_compare_exchange_weak_explicit(
						   &l->state, &c, c | MKI_LOCK_WAITERS,
						   memory_order_relaxed, memory_order_relaxed))
			continue;
		futex(&l->state, FUTEX_WAIT_PRIVATE, c | MKI_LOCK_WAITERS);
	}
}

void mki_unlock(mki_lock_t *l)
{
	if (atomic_exchange_explicit(&l->state, 0, memory_order_release) & MKI_LOCK_WAITERS)
		futex(&l->state, FUTEX_WAKE_PRIVATE, 1);
}

void mki_lock_before_fork(mki_lock_t *l)
{
	int held = atomic_load_explicit(&l->state, memory_order_relaxed) & ~MKI_LOCK_WAITERS;
	if (held == self_id()) {
		l->fork_skipped = true; /* a signal handler interrupted us holding it */
		return;
	}
	mki_lock(l);
}

void mki_unlock_after_fork(mki_lock_t *l)
{
	if (l->fork_skipped) {
		l->fork_skipped = false;
		return;
	}
	mki_unlock(l);
}
