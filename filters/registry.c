/* SPDX-License-Identifier: MIT */
/* registry: the sorted table of filter types. Keep it sorted by name (a test checks). */
#include "filters/registry.h"

#include <string.h>

#include "filters/filter.h"

static const struct filter_ops *const table[] = {
	&basic_filter_ops,
	&clip_score_filter_ops,
	&color_filter_ops,
	&color_ngram_filter_ops,
	&exact_dup_filter_ops,
	&prototypes_filter_ops,
	&semdedup_filter_ops,
};

const struct filter_ops *registry_find(const char *name)
{
	size_t lo = 0, hi = sizeof table / sizeof table[0];

	if (name == NULL)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, table[mid]->name);

		if (c == 0)
			return table[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct filter_ops *const *registry_table(size_t *n)
{
	*n = sizeof table / sizeof table[0];
	return table;
}
