// SPDX-License-Identifier: MIT
/*
 * xmalloc: threads that only allocate and threads that only free, through
 * one shared queue (the shape of Lever and Boreham's xmalloc-test).
 *
 * Half of the threads allocate small blocks (8..512 bytes), fill batches
 * with them and push the batches onto one queue shared by all; the other
 * half pop batches, whichever producer made them, verify and free every
 * block. No block is ever freed by the thread that allocated it, and a
 * freeing thread sees blocks of every producer: the allocator's remote-free
 * path under contention, with memory flowing one way only.
 *
 * Checks: tags of every block; the sum over all blocks of (tag ^ size) the
 * freeing threads saw must equal what the producers made.
 */
#include <pthread.h>
#include "bench.h"

#define BATCH 64
#define QUEUE 64		/* batches queued at most */

struct blk {
	uint64_t tag;
	uint64_t size;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct blk **ring[QUEUE];
	uint64_t head, tail;
	int producers_left;
} q = { .lock = PTHREAD_MUTEX_INITIALIZER,
	.not_empty = PTHREAD_COND_INITIALIZER,
	.not_full = PTHREAD_COND_INITIALIZER };

struct worker {
	pthread_t tid;
	uint64_t seed, batches, sum;
};

static void *producer(void *arg)
{
	struct worker *w = arg;
	struct bench_rng rng;

	rng_seed(&rng, w->seed);
	for (uint64_t b = 0; b < w->batches; b++) {
		struct blk **batch = bench_malloc(BATCH * sizeof(*batch));

		for (int i = 0; i < BATCH; i++) {
			size_t size = 8 + rng_below(&rng, 505);
			struct blk *m = bench_malloc(size < sizeof(*m) ? sizeof(*m) : size);

			m->tag = rng_next(&rng);
			m->size = size;
			if (size > sizeof(*m))
				block_tag(m + 1, size - sizeof(*m), m->tag);
			w->sum += m->tag ^ size;
			batch[i] = m;
		}
		pthread_mutex_lock(&q.lock);
		while (q.head - q.tail == QUEUE)
			pthread_cond_wait(&q.not_full, &q.lock);
		q.ring[q.head++ % QUEUE] = batch;
		pthread_cond_signal(&q.not_empty);
		pthread_mutex_unlock(&q.lock);
	}
	pthread_mutex_lock(&q.lock);
	q.producers_left--;
	pthread_cond_broadcast(&q.not_empty);
	pthread_mutex_unlock(&q.lock);
	return NULL;
}

static void *consumer(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		struct blk **batch;

		pthread_mutex_lock(&q.lock);
		while (q.head == q.tail && q.producers_left)
			pthread_cond_wait(&q.not_empty, &q.lock);
		if (q.head == q.tail) {
			pthread_mutex_unlock(&q.lock);
			return NULL;
		}
		batch = q.ring[q.tail++ % QUEUE];
		pthread_cond_signal(&q.not_full);
		pthread_mutex_unlock(&q.lock);
		for (int i = 0; i < BATCH; i++) {
			struct blk *m = batch[i];

			if (m->size < 8 || m->size > 512)
				bench_fail("block %p: header overwritten (size %llu)",
					   (void *)m, (unsigned long long)m->size);
			if (m->size > sizeof(*m))
				block_verify(m + 1, m->size - sizeof(*m), m->tag);
			w->sum += m->tag ^ m->size;
			free(m);
		}
		free(batch);
	}
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 4);
	int np = o.threads / 2 > 0 ? o.threads / 2 : 1;
	int nc = o.threads - np > 0 ? o.threads - np : 1;
	uint64_t batches = scaled(&o, 40000, 100);
	struct worker *w = calloc(np + nc, sizeof(*w));
	uint64_t made = 0, seen = 0, sum = 0;

	if (!w)
		bench_fail("no memory for the thread table");
	q.producers_left = np;
	for (int i = 0; i < np + nc; i++) {
		w[i].seed = 300 + i;
		w[i].batches = batches;
		if (pthread_create(&w[i].tid, NULL, i < np ? producer : consumer, &w[i]))
			bench_fail("pthread_create");
	}
	for (int i = 0; i < np + nc; i++)
		pthread_join(w[i].tid, NULL);
	for (int i = 0; i < np; i++) {
		made += w[i].sum;
		sum = mix64(sum, w[i].sum);
	}
	for (int i = np; i < np + nc; i++)
		seen += w[i].sum;
	if (made != seen)
		bench_fail("the freeing threads saw %016llx, the producers made %016llx",
			   (unsigned long long)seen, (unsigned long long)made);
	printf("result workload=xmalloc allocator=%s checksum=%016llx producers=%d consumers=%d blocks=%llu\n",
	       bench_allocator(), (unsigned long long)sum, np, nc,
	       (unsigned long long)batches * BATCH * np);
	free(w);
	return 0;
}
