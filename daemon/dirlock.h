/* SPDX-License-Identifier: MIT */
/* dirlock: one winnowd per data directory, by an exclusive flock on a lock file in it.
 *
 * Two daemons on one LMDB environment would each run its own job runner and keep its own
 * in-memory indexes, so the second one rebuilds and serves what the first one changes
 * under it. The lock is advisory (flock), held for the life of the process and released
 * by the kernel when the process ends, however it ends (SIGKILL included), so a crash
 * never leaves a stale lock behind. Not thread-safe; main() calls it once. */
#ifndef WINNOW_DIRLOCK_H
#define WINNOW_DIRLOCK_H

struct err;

/* The lock file's name inside the data directory. */
#define DIRLOCK_FILE "winnowd.lock"

/* Create dir if missing (with its parents), open dir/winnowd.lock and take an exclusive
 * flock on it without waiting, then write our pid into it. *fd is the open lock file,
 * to be kept open (and given to dirlock_release) while the directory is in use.
 * Returns 0; ERR_CONFLICT when another process holds the lock (e names the directory
 * and, when the file says so, the holder's pid; slug "data_dir_locked"); ERR_IO when the
 * directory or the file cannot be created or locked. */
int dirlock_acquire(const char *dir, int *fd, struct err *e);

/* Close the lock file, which releases the lock. fd < 0 is ignored. The file stays: a
 * removal would race with a daemon that has just opened it. */
void dirlock_release(int fd);

#endif
