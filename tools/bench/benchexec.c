// SPDX-License-Identifier: MIT
/*
 * benchexec: run one command and report its wall time and rusage.
 *
 * Usage: benchexec REPORT_FILE COMMAND [ARG...]
 *
 * Why a separate program: the peak RSS that wait4() reports for a child
 * includes the memory of the process it was forked from (exec keeps the old
 * mm's high-water mark), so a child forked from the Python runner would
 * start with the runner's RSS. benchexec is tiny and forks the command
 * itself. BENCH_PRELOAD, when set, becomes LD_PRELOAD of the command only,
 * so benchexec itself never runs on the allocator under test.
 *
 * REPORT_FILE gets one line: "wall_ns maxrss_kb utime_us stime_us status",
 * status as from wait4. The exit status of benchexec is 0 when the report
 * was written (whatever the command did), 125 on its own errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	const char *preload = getenv("BENCH_PRELOAD");
	struct rusage ru;
	long long t0, t1;
	FILE *report;
	pid_t pid;
	int status;

	if (argc < 3) {
		fprintf(stderr, "usage: %s REPORT_FILE COMMAND [ARG...]\n", argv[0]);
		return 125;
	}
	report = fopen(argv[1], "w");
	if (!report) {
		perror(argv[1]);
		return 125;
	}
	t0 = now_ns();
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 125;
	}
	if (pid == 0) {
		unsetenv("BENCH_PRELOAD");
		if (preload && *preload && setenv("LD_PRELOAD", preload, 1))
			_exit(125);
		execv(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("wait4");
		return 125;
	}
	t1 = now_ns();
	fprintf(report, "%lld %ld %lld %lld %d\n", t1 - t0, ru.ru_maxrss,
		(long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
		(long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec,
		status);
	return fclose(report) ? 125 : 0;
}
