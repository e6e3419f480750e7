/* wl-tree - binary trees built and freed (after the binary-trees game).
 *
 * One long-lived tree of depth 16 per thread; then, for depths 4, 6 .. 18,
 * 2^(20 - depth) short-lived trees of that depth are built, checked (node
 * count) and freed. Nodes are 24-byte mallocs.
 */
#include "common.h"

struct node {
	struct node *left, *right;
	long value;
};

struct arg {
	int id;
	uint64_t sum;
};

static int maxdepth;

static struct node *build(int depth, long value)
{
	struct node *n = bench_xmalloc(sizeof(*n));
	n->value = value;
	if (depth > 0) {
		n->left = build(depth - 1, 2 * value);
		n->right = build(depth - 1, 2 * value + 1);
	} else {
		n->left = n->right = NULL;
	}
	return n;
}

static uint64_t check(const struct node *n)
{
	if (!n->left)
		return 1 + (uint64_t)(n->value & 1);
	return 1 + check(n->left) + check(n->right);
}

static void destroy(struct node *n)
{
	if (n->left) {
		destroy(n->left);
		destroy(n->right);
	}
	free(n);
}

static void *worker(void *p)
{
	struct arg *a = p;
	uint64_t sum = 0;
	struct node *longlived = build(16, a->id);

	for (int d = 4; d <= maxdepth; d += 2) {
		long iters = 1L << (maxdepth + 2 - d);
		for (long i = 0; i < iters; i++) {
			struct node *t = build(d, i);
			sum += check(t);
			destroy(t);
		}
	}
	sum = bench_mix(sum, check(longlived));
	destroy(longlived);
	a->sum = sum;
	return NULL;
}

int main(void)
{
	int nt = bench_threads();
	struct arg *args = calloc((size_t)nt, sizeof(*args));
	uint64_t sum = 0;

	/* BENCH_SCALE halves or doubles the work per factor of two. */
	maxdepth = 18;
	for (long s = bench_scaled(8); s < 8 && maxdepth > 8; s *= 2)
		maxdepth -= 1;
	for (int i = 0; i < nt; i++)
		args[i].id = i;
	bench_run_threads(nt, worker, args, sizeof(*args));
	for (int i = 0; i < nt; i++)
		sum = bench_mix(sum, args[i].sum);
	free(args);
	return bench_finish(sum);
}
