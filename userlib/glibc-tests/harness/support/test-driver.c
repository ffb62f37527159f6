/* SPDX-License-Identifier: MIT */
/*
 * Stand-in for glibc's support/test-driver.c: the main() a test gets by
 * including this file last. The test's function is do_test(), or the one
 * TEST_FUNCTION names (test-skeleton.c turns the old "do_test ()" form into
 * a function). It runs in a child process, so that a crash or an abort is
 * a result, not the end of the driver; the driver then exits with
 *   0   passed (or died of EXPECTED_SIGNAL / exited with EXPECTED_STATUS),
 *   77  unsupported (the test said so),
 *   1   anything else: a failed check, a wrong status or signal, a timeout
 *       (TIMEOUT seconds, default DEFAULT_TIMEOUT, times $TIMEOUTFACTOR).
 */
#include <support/test-driver.h>

#ifdef TEST_FUNCTION
#define UPA_TEST_FUNCTION TEST_FUNCTION
#else
#define UPA_TEST_FUNCTION do_test
#endif
#ifndef TIMEOUT
#define TIMEOUT DEFAULT_TIMEOUT
#endif

static volatile sig_atomic_t upa_timed_out;

static void upa_on_alarm(int sig)
{
	(void)sig;
	upa_timed_out = 1;
}

int main(void)
{
	int (*fn)(void) = UPA_TEST_FUNCTION;
	const char *factor = getenv("TIMEOUTFACTOR");
	unsigned int timeout = TIMEOUT;
	struct sigaction sa;
	int status, rc;
	pid_t pid, w;

	if (factor && atoi(factor) > 0)
		timeout *= (unsigned int)atoi(factor);
	setvbuf(stdout, NULL, _IONBF, 0);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		perror("test driver: fork");
		return 1;
	}
	if (pid == 0) {
		setpgid(0, 0);	/* the driver kills the whole group */
		rc = fn();
		exit(upa_test_failures && rc != 77 ? 1 : rc);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = upa_on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	alarm(timeout);
	do {
		w = waitpid(pid, &status, 0);
	} while (w < 0 && errno == EINTR && !upa_timed_out);
	if (w != pid) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		printf("Timed out: killed the test after %u s\n", timeout);
		return 1;
	}
	alarm(0);
#ifdef EXPECTED_SIGNAL
	if (WIFSIGNALED(status) && WTERMSIG(status) == EXPECTED_SIGNAL)
		return 0;
	printf("Expected signal %d (%s), got %s %d\n", EXPECTED_SIGNAL,
	       strsignal(EXPECTED_SIGNAL),
	       WIFSIGNALED(status) ? "signal" : "exit status",
	       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	return 1;
#else
	if (WIFSIGNALED(status)) {
		printf("Didn't expect signal from child: got `%s'\n",
		       strsignal(WTERMSIG(status)));
		return 1;
	}
#ifdef EXPECTED_STATUS
	if (WEXITSTATUS(status) == EXPECTED_STATUS)
		return 0;
	printf("Expected status %d, got %d\n", EXPECTED_STATUS,
	       WEXITSTATUS(status));
	return 1;
#else
	return WEXITSTATUS(status);
#endif
#endif
}
