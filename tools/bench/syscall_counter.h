/* SPDX-License-Identifier: MIT */
/*
 * syscall_counter.h: a perf counter of system calls, on the
 * raw_syscalls:sys_enter tracepoint. Shared by uring_bench and the
 * library's io_uring test (userlib/tests/uring.c), which both compare
 * system call counts with and without the ring.
 *
 * The counter starts disabled (PERF_EVENT_IOC_ENABLE starts it) and counts
 * the calling thread; with inherit, also the threads and children it
 * creates afterwards (their counts are added when they exit).
 */
#ifndef UPALLOC_SYSCALL_COUNTER_H
#define UPALLOC_SYSCALL_COUNTER_H

#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The counter's descriptor, or -1 without perf or tracefs. */
static inline int syscall_counter_open(int inherit)
{
	static const char *const ids[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	struct perf_event_attr attr;
	unsigned long long id = 0;
	size_t i;
	FILE *f;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]) && !id; i++) {
		f = fopen(ids[i], "re");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &id) != 1)
			id = 0;
		fclose(f);
	}
	if (!id)
		return -1;
	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_TRACEPOINT;
	attr.size = sizeof(attr);
	attr.config = id;
	attr.disabled = 1;
	attr.inherit = inherit ? 1 : 0;
	return (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1,
			    PERF_FLAG_FD_CLOEXEC);
}

#endif /* UPALLOC_SYSCALL_COUNTER_H */
