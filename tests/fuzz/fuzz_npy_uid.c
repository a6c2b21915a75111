/* SPDX-License-Identifier: MIT */
/* fuzz_npy_uid: libFuzzer driver for npy_uid_parse (lib/npy.c), the DataComp uid of an
 * `.npy` export: any bytes; an accepted uid is 1 to 32 hex digits and prints back to
 * itself left-padded with zeros to 32, as DataComp's resharder pads it. */
#include <ctype.h>
#include <inttypes.h>

#include "lib/npy.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t hi = 0, lo = 0;
	char back[33];

	if (npy_uid_parse((const char *)data, size, &hi, &lo) != 0)
		return 0;
	if (size < 1 || size > 32)
		abort();
	snprintf(back, sizeof back, "%016" PRIx64 "%016" PRIx64, hi, lo);
	for (size_t i = 0; i < 32; i++)
		if (back[i] != (i < 32 - size ? '0' : tolower(data[i - (32 - size)])))
			abort();
	return 0;
}
