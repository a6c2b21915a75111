#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# faiss-avx2.sh: build the AVX2 variant of winnow's FAISS library from Debian's faiss
# source package (already extracted by scripts/deps.sh under BUILD_DIR/apt/src/faiss).
#
# The result is BUILD_DIR/faiss/lib/glibc-hwcaps/x86-64-v3/libwinnow_faiss.so: the same
# soname as the generic BUILD_DIR/faiss/lib/libwinnow_faiss.so, compiled like FAISS's own
# `faiss_avx2` CMake target (-mavx2 -mfma -mf16c -mpopcnt), so glibc's loader maps it in
# place of the generic one on a CPU with the x86-64-v3 features (docs/performance.md).
#
# Three files get winnow's patch (scripts/faiss-avx2.patch, applied to copies: the
# generic build never compiles them): the HNSW search prefetches each neighbour's vector
# while it scores the one before, as hnswlib does (impl/HNSW.cpp, IndexHNSW.cpp; same
# results), and the AVX inner product and L2 kernels keep four sums with fused
# multiply-adds instead of one sum (utils/distances_simd.cpp; scores can differ from the
# generic build's in their last bits). The speed-ups are measured in docs/performance.md.
# The patch's hash is part of the build's version, so a changed patch rebuilds the library.
#
# It takes minutes on two cores, so scripts/deps.sh starts it detached and nice'd, logging
# to BUILD_DIR/faiss/avx2.log. A lock (BUILD_DIR/faiss/avx2.lock) keeps two builds from
# racing; objects already compiled are kept, so a killed build resumes; the library is
# installed by a rename, so a daemon never maps half a file.
#
# Usage: scripts/faiss-avx2.sh BUILD_DIR          build (no-op when the library is there)
#        scripts/faiss-avx2.sh BUILD_DIR --wait   wait for a running build, build if none ran
#        scripts/faiss-avx2.sh BUILD_DIR --check  exit 0 when the library is up to date
set -euo pipefail

build=$(cd "${1:?usage: faiss-avx2.sh BUILD_DIR [--wait]}" && pwd)
mode=${2:-build}
faiss_dir=$build/faiss
src=$build/apt/src/faiss
lib=$faiss_dir/lib/glibc-hwcaps/x86-64-v3/libwinnow_faiss.so
lock=$faiss_dir/avx2.lock
version_file=$faiss_dir/avx2.version
patch_file=$(cd "$(dirname "$0")" && pwd)/faiss-avx2.patch
version=$(cat "$faiss_dir/version" 2>/dev/null || echo unknown)+$(sha256sum "$patch_file" | cut -c1-12)

up_to_date() { [ -f "$lib" ] && [ "$(cat "$version_file" 2>/dev/null)" = "$version" ]; }

if [ "$mode" = --check ]; then
	up_to_date
	exit
fi
mkdir -p "$faiss_dir"
exec 9> "$lock"
if [ "$mode" = --wait ]; then
	if ! up_to_date && ! flock -n 9; then
		echo "faiss-avx2: waiting for the AVX2 build (log $faiss_dir/avx2.log)"
		flock 9
	fi
	up_to_date && { echo "faiss-avx2: $lib is ready"; exit 0; }
	echo "faiss-avx2: no AVX2 library yet; building it in the foreground"
else
	flock -n 9 || { echo "faiss-avx2: another build holds $lock"; exit 0; }
fi
if up_to_date; then
	echo "faiss-avx2: $lib is up to date"
	exit 0
fi
[ -d "$src/faiss" ] || { echo "faiss-avx2: no source in $src (run make deps)" >&2; exit 1; }

start=$(date +%s)
obj=$faiss_dir/avx2/obj
# objects of an interrupted build are kept, if they are of this version of the source
[ "$(cat "$obj/version" 2>/dev/null)" = "$version" ] || rm -rf "$obj"
mkdir -p "$obj" "$(dirname "$lib")"
echo "$version" > "$obj/version"
flags=(-std=c++17 -O2 -g0 -fPIC -fopenmp -DFINTEGER=int -mavx2 -mfma -mf16c -mpopcnt -I"$src")
# the patched files, as copies beside the objects
patched=$faiss_dir/avx2/patched
rm -rf "$patched"
mkdir -p "$patched"
(cd "$src" && cp --parents faiss/impl/HNSW.cpp faiss/IndexHNSW.cpp faiss/utils/distances_simd.cpp \
	"$patched/")
patch -d "$patched" -p1 --quiet --forward < "$patch_file"
export obj src patched
compile() { # SOURCE (relative to $src; its patched copy if any): one object, renamed when whole
	local o=$obj/${1//\//_} s=$src/$1
	o=${o%.cpp}.o
	[ -f "$patched/$1" ] && s=$patched/$1
	[ -f "$o" ] && return 0
	g++ "${@:2}" -c "$s" -o "$o.tmp" && mv "$o.tmp" "$o"
}
export -f compile
(cd "$src" && ls faiss/*.cpp faiss/impl/*.cpp faiss/invlists/*.cpp faiss/utils/*.cpp \
	c_api/*.cpp c_api/impl/*.cpp c_api/utils/*.cpp 2>/dev/null) |
	xargs -P "${FAISS_AVX2_JOBS:-2}" -I{} bash -c 'compile "$@"' _ {} "${flags[@]}"
# the build's name, which the daemon reports (index_faiss_build())
printf 'const char *winnow_faiss_build(void) { return "avx2"; }\n' |
	gcc -O2 -fPIC -x c -c - -o "$obj/winnow_faiss_build.o"
g++ -shared -o "$lib.tmp" -Wl,-soname,libwinnow_faiss.so -Wl,-z,now "$obj"/*.o \
	-fopenmp -lopenblas -lstdc++ -lm
mv "$lib.tmp" "$lib"
echo "$version" > "$version_file"
rm -rf "$faiss_dir/avx2"
echo "faiss-avx2: built $lib in $(( $(date +%s) - start )) s"
