#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deps.sh: install winnow's build and test dependencies from Debian's packages and build
# winnow's FAISS library from Debian's faiss source package, in two builds of one soname:
#
#   build/faiss/lib/libwinnow_faiss.so                         generic: the C API compiled
#       here + Debian's libfaiss.a (no SIMD beyond SSE2), whole; made at once (seconds)
#   build/faiss/lib/glibc-hwcaps/x86-64-v3/libwinnow_faiss.so  avx2: all of FAISS compiled
#       with -mavx2 -mfma -mf16c -mpopcnt (scripts/faiss-avx2.sh), started here in the
#       background, detached and nice'd (minutes; log build/faiss/avx2.log)
#
# winnow's programs link the soname with a RUNPATH to build/faiss/lib; glibc's loader maps
# the x86-64-v3 one on a CPU that has those features and the generic one otherwise. A daemon
# started before the AVX2 build ends runs the generic one, and the AVX2 one from its next
# start. `scripts/deps.sh BUILD_DIR --wait` (make deps-wait) waits for the AVX2 build.
#
# Debian ships the FAISS C API headers (libfaiss-dev) but not the compiled C API, so this
# fetches the `faiss` source package with `apt-get source` through a private apt source
# list derived from the machine's configured Debian sources (deb lines become deb-src),
# compiles c_api/*.cpp (CPU only, not c_api/gpu) against the installed libfaiss.a and
# keeps the archive under build/faiss/. No system apt file is edited.
#
# Idempotent: each step is skipped when its result is already there.
# WINNOW_FAISS_AVX2=0 skips the AVX2 build.
# Usage: scripts/deps.sh BUILD_DIR [--wait]
set -euo pipefail

build=${1:-build}
mkdir -p "$build"
if [ "${2:-}" = --wait ]; then
	[ "${WINNOW_FAISS_AVX2:-1}" != 0 ] && [ "$(uname -m)" = x86_64 ] || exit 0
	exec "$(dirname "$0")/faiss-avx2.sh" "$build" --wait
fi
build=$(cd "$build" && pwd)
apt_dir=$build/apt
faiss_dir=$build/faiss
stamp=$build/deps.stamp

pkgs=(build-essential pkg-config dpkg-dev patch
      libmicrohttpd-dev libgnutls28-dev libjansson-dev liblmdb-dev libfaiss-dev libopenblas-dev
      libcurl4-openssl-dev clang libclang-rt-14-dev
      curl openssl python3 python3-numpy python3-faiss python3-yaml python3-hnswlib python3-matplotlib
      lmdb-utils valgrind tmux
      dataset-fashion-mnist
      irstlm wordnet-base fortunes-min fortunes
      chromium)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	echo "deps: Debian packages present"
fi

version=$(dpkg-query -W -f='${source:Version}' libfaiss-dev)
src=$apt_dir/src/faiss

# Debian's faiss source package, under build/apt/src/faiss (the C API and the AVX2 build).
fetch_source() {
	[ -f "$apt_dir/src/version" ] && [ "$(cat "$apt_dir/src/version")" = "$version" ] &&
		[ -d "$src/faiss" ] && return 0
	# A private apt configuration: source lists derived from the configured ones, with
	# their own state and cache directories, so nothing under /etc/apt or /var is touched.
	rm -rf "$apt_dir"
	mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/src"
	local n=0 f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		grep -q '^Types:.*\bdeb\b' "$f" || continue
		sed -E 's/^Types:.*/Types: deb-src/' "$f" > "$apt_dir/sources/$(basename "$f")"
		n=$((n + 1))
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		if grep -qE '^[[:space:]]*deb[[:space:]]' "$f"; then
			sed -nE 's/^[[:space:]]*deb([[:space:]])/deb-src\1/p' "$f" > "$apt_dir/sources/$(basename "$f")"
			n=$((n + 1))
		fi
	done
	[ "$n" -gt 0 ] || { echo "deps: no configured apt sources found" >&2; exit 1; }
	local aptopt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/sources"
	        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
	        -o APT::Sandbox::User=root -o Debug::NoLocking=1)
	echo "deps: fetching Debian's faiss source package"
	apt-get "${aptopt[@]}" update -qq
	(cd "$apt_dir/src" && apt-get "${aptopt[@]}" source -qq --download-only "faiss=$version")
	local dsc
	dsc=$(ls "$apt_dir"/src/faiss_*.dsc | head -n 1)
	dpkg-source --no-check -x "$dsc" "$src" > /dev/null
	echo "$version" > "$apt_dir/src/version"
}

if [ -f "$faiss_dir/libfaiss_c.a" ] && [ -f "$faiss_dir/version" ] &&
   [ "$(cat "$faiss_dir/version")" = "$version" ]; then
	echo "deps: $faiss_dir/libfaiss_c.a is up to date"
else
	fetch_source
	echo "deps: compiling the FAISS C API (c_api/*.cpp, no GPU)"
	rm -rf "$faiss_dir/obj" "$faiss_dir/libfaiss_c.a" && mkdir -p "$faiss_dir/obj"
	objs=()
	for cpp in "$src"/c_api/*.cpp "$src"/c_api/impl/*.cpp "$src"/c_api/utils/*.cpp; do
		[ -f "$cpp" ] || continue
		o=$faiss_dir/obj/$(basename "$cpp" .cpp).o
		g++ -std=c++17 -O2 -fPIC -fopenmp -I"$src" -c "$cpp" -o "$o"
		objs+=("$o")
	done
	ar rcs "$faiss_dir/libfaiss_c.a.tmp" "${objs[@]}"
	mv "$faiss_dir/libfaiss_c.a.tmp" "$faiss_dir/libfaiss_c.a"
	echo "$version" > "$faiss_dir/version"
	rm -rf "$faiss_dir/obj"
fi

# The generic shared library: the C API archive and Debian's libfaiss.a (PIC), whole, and
# the build's name (index_faiss_build()). Debian's FAISS runs scalar distance loops, whose
# speed moved by 5% with where fvec_inner_product_ref fell in a cache line
# (docs/performance.md, "Search"): a pad first in .text puts it at 16 mod 64 (and
# fvec_L2sqr_ref at 48), as the static link of winnowd did before.
generic=$faiss_dir/lib/libwinnow_faiss.so
link_generic() { # PAD
	local tmp=$faiss_dir/lib/tmp
	mkdir -p "$tmp"
	{ printf '.text\n.p2align 6\n'; [ "$1" = 0 ] || printf '.skip %d\n' "$1"
	  printf '.section .note.GNU-stack,"",@progbits\n'; } | gcc -c -x assembler -o "$tmp/pad.o" -
	printf 'const char *winnow_faiss_build(void) { return "generic"; }\n' |
		gcc -O2 -fPIC -x c -c - -o "$tmp/build.o"
	g++ -shared -o "$generic.tmp" -Wl,-soname,libwinnow_faiss.so -Wl,-z,now "$tmp/pad.o" \
		-Wl,--whole-archive -l:libfaiss.a "$faiss_dir/libfaiss_c.a" -Wl,--no-whole-archive \
		"$tmp/build.o" -fopenmp -lopenblas -lstdc++ -lm
	rm -rf "$tmp"
}
if [ -f "$generic" ] && [ "$generic" -nt "$faiss_dir/libfaiss_c.a" ]; then
	echo "deps: $generic is up to date"
else
	echo "deps: linking $generic"
	mkdir -p "$faiss_dir/lib"
	link_generic 0
	ip=$(nm "$generic.tmp" | awk '/ T _ZN5faiss22fvec_inner_product_refEPKfS1_m$/ { print $1 }')
	link_generic $(( (16 - 0x${ip:-0} % 64 + 64) % 64 ))
	mv "$generic.tmp" "$generic"
fi

# The AVX2 build: in the background, so that the first `make run` need not wait for it.
if [ "${WINNOW_FAISS_AVX2:-1}" != 0 ] && [ "$(uname -m)" = x86_64 ]; then
	fetch_source
	if "$(dirname "$0")/faiss-avx2.sh" "$build" --check; then
		echo "deps: the AVX2 FAISS library is up to date"
	else
		echo "deps: building the AVX2 FAISS library in the background (log $faiss_dir/avx2.log;" \
		     "make deps-wait waits for it)"
		setsid nohup nice -n 19 "$(dirname "$0")/faiss-avx2.sh" "$build" \
			>> "$faiss_dir/avx2.log" 2>&1 < /dev/null &
	fi
fi
touch "$stamp"
echo "deps: done"
