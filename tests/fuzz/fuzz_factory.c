/* SPDX-License-Identifier: MIT */
/* fuzz_factory: libFuzzer driver for FAISS index-factory strings as an index definition
 * meets them (issue 16): index_faiss_train_rows judges the string first, and only what it
 * accepts reaches FAISS's factory (index_create), as in catalog_put. Creating must fail
 * cleanly or give an index; FAISS's own crashes on training are the child's (not fuzzed
 * here: a fork per input is too slow). */
#include "index/index.h"
#include "lib/err.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	uint64_t rows = 0;
	struct index *ix = NULL;
	struct err e = {0};

	if (size > 64 || (s = fuzz_str(data, size)) == NULL)
		return 0;
	if (strlen(s) == size && index_faiss_train_rows(s, &rows, &e) == 0) {
		/* dimension 16: divisible by the PQ sizes a string may ask for */
		if (index_create(&ix, &index_faiss_ops, 16, INDEX_L2, s, &e) == 0)
			index_free(ix);
	}
	free(s);
	return 0;
}
