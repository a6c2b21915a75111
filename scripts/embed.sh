#!/bin/sh
# SPDX-License-Identifier: MIT
# embed.sh IN OUT SYMBOL HEADER: write OUT, a C file defining `const char SYMBOL[]` (the
# bytes of IN plus a NUL) and `const size_t SYMBOL_len`, including HEADER.
set -eu
in=$1 out=$2 sym=$3 hdr=$4
{
	printf '/* Generated from %s by scripts/embed.sh: do not edit. */\n' "$in"
	printf '#include "%s"\n\nconst char %s[] = {\n' "$hdr" "$sym"
	# character literals, not 0xHH: bytes above 0x7f (UTF-8 text) fit a char without overflow
	od -An -v -tx1 "$in" | sed -e "s/ *\\([0-9a-f][0-9a-f]\\)/'\\\\x\\1',/g"
	printf '0x00};\nconst size_t %s_len = sizeof %s - 1;\n' "$sym" "$sym"
} > "$out.tmp"
mv "$out.tmp" "$out"
