/* SPDX-License-Identifier: MIT */
/* registry: every filter type this build offers, in one sorted const table. Adding a type
 * is a line here and a line in registry.c (see "how to add a filter" in filters/filter.h).
 * Thread-safe: const data only. */
#ifndef WINNOW_REGISTRY_H
#define WINNOW_REGISTRY_H

#include <stddef.h>

struct filter_ops;

extern const struct filter_ops basic_filter_ops;
extern const struct filter_ops clip_score_filter_ops;
extern const struct filter_ops color_filter_ops;
extern const struct filter_ops color_ngram_filter_ops;
extern const struct filter_ops exact_dup_filter_ops;
extern const struct filter_ops prototypes_filter_ops;
extern const struct filter_ops semdedup_filter_ops;
/* The example of filters/template.c: built, tested, not in the table. */
extern const struct filter_ops template_filter_ops;

/* The type called name, or NULL. Binary search of the table. name is borrowed. */
const struct filter_ops *registry_find(const char *name);

/* The table (sorted by name); *n gets its length. Static, never NULL. */
const struct filter_ops *const *registry_table(size_t *n);

#endif
