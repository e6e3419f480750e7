/* wl-prodcons - producer/consumer: blocks freed by another thread.
 *
 * max(1, threads/2) pairs. Each producer allocates blocks of 16..1024 bytes,
 * fills their first word, and passes them in batches of 64 through a bounded
 * queue (mutex + condition variables) to its consumer, which reads and frees
 * them: every free is a cross-thread free.
 */
#include "common.h"

#define BATCH 64
#define QLEN  64

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	void **item[QLEN];
	int head, count;
};

struct pair {
	struct queue q;
	int id;
	uint64_t produced, consumed;
};

static long blocks;

static void q_push(struct queue *q, void **batch)
{
	pthread_mutex_lock(&q->lock);
	while (q->count == QLEN)
		pthread_cond_wait(&q->not_full, &q->lock);
	q->item[(q->head + q->count) % QLEN] = batch;
	q->count++;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
}

static void **q_pop(struct queue *q)
{
	void **batch;
	pthread_mutex_lock(&q->lock);
	while (q->count == 0)
		pthread_cond_wait(&q->not_empty, &q->lock);
	batch = q->item[q->head];
	q->head = (q->head + 1) % QLEN;
	q->count--;
	pthread_cond_signal(&q->not_full);
	pthread_mutex_unlock(&q->lock);
	return batch;
}

static void *producer(void *p)
{
	struct pair *pr = p;
	uint64_t rng = bench_seed((uint64_t)pr->id + 200);
	uint64_t sum = 0;
	for (long b = 0; b < blocks / BATCH; b++) {
		void **batch = bench_xmalloc(sizeof(void *) * BATCH);
		for (int i = 0; i < BATCH; i++) {
			size_t n = 16 + bench_rand(&rng) % 1009;
			uint64_t *blk = bench_xmalloc(n);
			blk[0] = n;
			blk[1] = (uint64_t)b;
			sum += n;
			batch[i] = blk;
		}
		q_push(&pr->q, batch);
	}
	q_push(&pr->q, NULL);
	pr->produced = sum;
	return NULL;
}

static void *consumer(void *p)
{
	struct pair *pr = p;
	uint64_t sum = 0;
	void **batch;
	while ((batch = q_pop(&pr->q)) != NULL) {
		for (int i = 0; i < BATCH; i++) {
			uint64_t *blk = batch[i];
			sum += blk[0];
			free(blk);
		}
		free(batch);
	}
	pr->consumed = sum;
	return NULL;
}

int main(void)
{
	int np = bench_threads() / 2;
	np = np < 1 ? 1 : np;
	struct pair *pairs = calloc((size_t)np, sizeof(*pairs));
	pthread_t *tid = calloc((size_t)np * 2, sizeof(*tid));
	uint64_t sum = 0;
	int bad = 0;

	blocks = bench_scaled(6000000);
	for (int i = 0; i < np; i++) {
		pairs[i].id = i;
		pthread_mutex_init(&pairs[i].q.lock, NULL);
		pthread_cond_init(&pairs[i].q.not_empty, NULL);
		pthread_cond_init(&pairs[i].q.not_full, NULL);
		pthread_create(&tid[2 * i], NULL, producer, &pairs[i]);
		pthread_create(&tid[2 * i + 1], NULL, consumer, &pairs[i]);
	}
	for (int i = 0; i < 2 * np; i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < np; i++) {
		bad |= pairs[i].produced != pairs[i].consumed;
		sum = bench_mix(sum, pairs[i].consumed);
	}
	free(pairs);
	free(tid);
	return bench_finish(bad ? 0 : sum);
}
