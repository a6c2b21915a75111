/* SPDX-License-Identifier: MIT */
/* dirlock: the exclusive flock that keeps a second winnowd off a data directory. */
#include "daemon/dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"

static int mkdir_p(const char *dir, struct err *e)
{
	char *path = strdup(dir);
	struct stat st;
	int rc = 0;

	if (path == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (char *p = path + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST) {
			rc = err_set(e, ERR_IO, "data_dir", "cannot create data directory %s: %s",
			             path, strerror(errno));
			break;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	if (rc == 0 && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
		rc = err_set(e, ERR_IO, "data_dir", "data directory %s is not a directory", dir);
	free(path);
	return rc;
}

/* The pid the holder wrote, or 0 when the file holds none (yet). */
static long holder_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	return end != buf && pid > 0 ? pid : 0;
}

int dirlock_acquire(const char *dir, int *fd, struct err *e)
{
	char path[4096], pid[32];
	int f, rc, n;

	*fd = -1;
	rc = mkdir_p(dir, e);
	if (rc != 0)
		return rc;
	if (snprintf(path, sizeof path, "%s/%s", dir, DIRLOCK_FILE) >= (int)sizeof path)
		return err_set(e, ERR_IO, "data_dir", "data directory path too long: %s", dir);
	f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (f < 0)
		return err_set(e, ERR_IO, "data_dir", "cannot open lock file %s: %s", path,
		               strerror(errno));
	if (flock(f, LOCK_EX | LOCK_NB) != 0) {
		int saved = errno;
		long holder = saved == EWOULDBLOCK ? holder_pid(f) : 0;

		close(f);
		if (saved != EWOULDBLOCK)
			return err_set(e, ERR_IO, "data_dir", "cannot lock %s: %s", path,
			               strerror(saved));
		if (holder > 0)
			return err_set(e, ERR_CONFLICT, "data_dir_locked",
			               "data directory %s is in use by another winnowd (pid %ld, "
			               "lock file %s)", dir, holder, path);
		return err_set(e, ERR_CONFLICT, "data_dir_locked",
		               "data directory %s is in use by another winnowd (lock file %s)",
		               dir, path);
	}
	/* The pid is only for the message of a second daemon: a failure here is harmless. */
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n)
		(void)0;
	*fd = f;
	return 0;
}

void dirlock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}
