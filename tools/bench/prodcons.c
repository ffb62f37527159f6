// SPDX-License-Identifier: MIT
/*
 * prodcons: producer/consumer pairs, every block freed by another thread.
 *
 * Each producer allocates messages of random sizes, fills them and passes
 * them in batches through a bounded queue to its consumer, which checks and
 * frees them. This is the pattern of pipelines and message queues, and the
 * worst case for allocators that keep memory per thread: every free is a
 * remote free. Batches keep the queue's locking cost small next to the
 * allocator's; the queue bound keeps the memory in flight bounded.
 */
#include <pthread.h>
#include "bench.h"

#define BATCH 128
#define QUEUE_BATCHES 8

struct msg {
	uint64_t tag;
	size_t size;
	/* payload follows, size - sizeof(struct msg) bytes */
};

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	struct msg **ring[QUEUE_BATCHES];
	unsigned int head, tail;	/* head - tail = batches queued */
	uint64_t batches;		/* how many the producer sends */
	uint64_t seed;
	uint64_t produced_sum;
	uint64_t consumed_sum;
};

static size_t msg_size(struct bench_rng *rng)
{
	return sizeof(struct msg) + rng_below(rng, 2048);
}

static void *producer(void *arg)
{
	struct queue *q = arg;
	struct bench_rng rng;

	rng_seed(&rng, q->seed);
	for (uint64_t b = 0; b < q->batches; b++) {
		struct msg **batch = bench_malloc(BATCH * sizeof(*batch));

		for (int i = 0; i < BATCH; i++) {
			size_t size = msg_size(&rng);
			struct msg *m = bench_malloc(size);

			m->tag = rng_next(&rng);
			m->size = size;
			block_tag(m + 1, size - sizeof(*m), m->tag);
			q->produced_sum += m->tag ^ size;
			batch[i] = m;
		}
		pthread_mutex_lock(&q->lock);
		while (q->head - q->tail == QUEUE_BATCHES)
			pthread_cond_wait(&q->not_full, &q->lock);
		q->ring[q->head++ % QUEUE_BATCHES] = batch;
		pthread_cond_signal(&q->not_empty);
		pthread_mutex_unlock(&q->lock);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct queue *q = arg;

	for (uint64_t b = 0; b < q->batches; b++) {
		struct msg **batch;

		pthread_mutex_lock(&q->lock);
		while (q->head == q->tail)
			pthread_cond_wait(&q->not_empty, &q->lock);
		batch = q->ring[q->tail++ % QUEUE_BATCHES];
		pthread_cond_signal(&q->not_full);
		pthread_mutex_unlock(&q->lock);
		for (int i = 0; i < BATCH; i++) {
			struct msg *m = batch[i];

			block_verify(m + 1, m->size - sizeof(*m), m->tag);
			q->consumed_sum += m->tag ^ m->size;
			free(m);
		}
		free(batch);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 2);
	int pairs = o.threads;
	uint64_t batches = scaled(&o, 12000, 50);
	struct queue *qs = calloc(pairs, sizeof(*qs));
	pthread_t *tids = calloc(2 * pairs, sizeof(*tids));
	uint64_t sum = 0;

	if (!qs || !tids)
		bench_fail("no memory for the queues");
	for (int i = 0; i < pairs; i++) {
		pthread_mutex_init(&qs[i].lock, NULL);
		pthread_cond_init(&qs[i].not_empty, NULL);
		pthread_cond_init(&qs[i].not_full, NULL);
		qs[i].batches = batches;
		qs[i].seed = 100 + i;
		if (pthread_create(&tids[2 * i], NULL, producer, &qs[i]) ||
		    pthread_create(&tids[2 * i + 1], NULL, consumer, &qs[i]))
			bench_fail("pthread_create");
	}
	for (int i = 0; i < 2 * pairs; i++)
		pthread_join(tids[i], NULL);
	for (int i = 0; i < pairs; i++) {
		if (qs[i].produced_sum != qs[i].consumed_sum)
			bench_fail("pair %d: consumer saw %016llx, producer sent %016llx",
				   i, (unsigned long long)qs[i].consumed_sum,
				   (unsigned long long)qs[i].produced_sum);
		sum = mix64(sum, qs[i].produced_sum);
	}
	printf("result workload=prodcons allocator=%s checksum=%016llx pairs=%d messages=%llu\n",
	       bench_allocator(), (unsigned long long)sum, pairs,
	       (unsigned long long)batches * BATCH * pairs);
	free(qs);
	free(tids);
	return 0;
}
