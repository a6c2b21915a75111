/* SPDX-License-Identifier: MIT */
/* clock: the monotonic clock every duration, rate and timeout in winnow is measured on. */
#ifndef WINNOW_CLOCK_H
#define WINNOW_CLOCK_H

/* CLOCK_MONOTONIC in seconds. Thread-safe. */
double clock_now(void);

#endif
