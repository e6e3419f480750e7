/* measure - run a command and report its wait4() resource usage.
 *
 *   measure RESULTFILE CMD [ARG...]
 *
 * writes "status=<wait status> wall=<s> user=<s> sys=<s> maxrss_kb=<KiB>" to
 * RESULTFILE. It exists because Linux keeps a process's peak RSS across
 * execve(): a child forked from the (large) Python driver would report the
 * driver's RSS as its own peak. This launcher is small, so the peak RSS of
 * its child is the command's own. ru_maxrss from wait4 covers the child and
 * the descendants it reaped. Exit status: 0 when the result was written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct rusage ru;
	int status = 0;
	pid_t pid;
	FILE *f;

	if (argc < 3) {
		fprintf(stderr, "usage: measure RESULTFILE CMD [ARG...]\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0) {
		perror("measure: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "measure: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("measure: wait4");
			return 2;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	f = fopen(argv[1], "w");
	if (!f) {
		perror("measure: result file");
		return 2;
	}
	fprintf(f, "status=%d wall=%.6f user=%.6f sys=%.6f maxrss_kb=%ld\n", status,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss);
	return fclose(f) == 0 ? 0 : 2;
}
