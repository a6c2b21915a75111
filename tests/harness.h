/* SPDX-License-Identifier: MIT */
/* harness: the unit-test harness. A test binary's main() calls HARNESS_RUN for each test
 * function and returns harness_done(), which prints "N passed, N failed" and gives the
 * exit status. A CHECK that fails ends its test (the rest of the test is skipped).
 * Single-threaded. */
#ifndef WINNOW_HARNESS_H
#define WINNOW_HARNESS_H

#include <stddef.h>

void harness_run(const char *name, void (*fn)(void));
/* Record a failure of the running test; used by the CHECK macros. */
void harness_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int harness_failed_now(void);
int harness_done(void);

#define HARNESS_RUN(fn) harness_run(#fn, fn)

#define CHECK(c)                                                        \
	do {                                                            \
		if (!(c)) {                                             \
			harness_fail(__FILE__, __LINE__, "%s", #c);     \
			return;                                         \
		}                                                       \
	} while (0)

#define CHECK_INT(a, b)                                                         \
	do {                                                                    \
		long long a_ = (long long)(a), b_ = (long long)(b);             \
		if (a_ != b_) {                                                 \
			harness_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", \
			             #a, #b, a_, b_);                           \
			return;                                                 \
		}                                                               \
	} while (0)

#define CHECK_NEAR(a, b, tol)                                                    \
	do {                                                                     \
		double a_ = (double)(a), b_ = (double)(b);                       \
		if (!(a_ - b_ <= (tol) && b_ - a_ <= (tol))) {                   \
			harness_fail(__FILE__, __LINE__, "%s ~ %s (%.9g vs %.9g)", \
			             #a, #b, a_, b_);                            \
			return;                                                  \
		}                                                                \
	} while (0)

#define CHECK_STR(a, b)                                                          \
	do {                                                                     \
		const char *a_ = (a), *b_ = (b);                                 \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {           \
			harness_fail(__FILE__, __LINE__, "%s == %s (\"%s\" vs \"%s\")", \
			             #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
			return;                                                  \
		}                                                                \
	} while (0)

#endif
