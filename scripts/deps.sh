#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deps.sh: install winnow's build and test dependencies from Debian's packages and build
# the FAISS C API library (libfaiss_c.a) from Debian's faiss source package.
#
# Debian ships the FAISS C API headers (libfaiss-dev) but not the compiled C API, so this
# fetches the `faiss` source package with `apt-get source` through a private apt source
# list derived from the machine's configured Debian sources (deb lines become deb-src),
# compiles c_api/*.cpp (CPU only, not c_api/gpu) against the installed libfaiss.a and
# keeps the archive under build/faiss/. No system apt file is edited.
#
# Idempotent: each step is skipped when its result is already there.
# Usage: scripts/deps.sh BUILD_DIR
set -euo pipefail

build=${1:-build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
apt_dir=$build/apt
faiss_dir=$build/faiss
stamp=$build/deps.stamp

pkgs=(build-essential pkg-config dpkg-dev
      libmicrohttpd-dev libgnutls28-dev libjansson-dev liblmdb-dev libfaiss-dev libopenblas-dev
      libcurl4-openssl-dev clang libclang-rt-14-dev
      curl openssl python3 python3-numpy python3-faiss python3-hnswlib python3-matplotlib lmdb-utils valgrind tmux
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

if [ -f "$faiss_dir/libfaiss_c.a" ] && [ -f "$faiss_dir/version" ] &&
   [ "$(cat "$faiss_dir/version")" = "$(dpkg-query -W -f='${source:Version}' libfaiss-dev)" ]; then
	echo "deps: $faiss_dir/libfaiss_c.a is up to date"
else
	# A private apt configuration: source lists derived from the configured ones, with
	# their own state and cache directories, so nothing under /etc/apt or /var is touched.
	rm -rf "$apt_dir"
	mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/src"
	n=0
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
	aptopt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/sources"
	        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
	        -o APT::Sandbox::User=root -o Debug::NoLocking=1)
	echo "deps: fetching Debian's faiss source package"
	apt-get "${aptopt[@]}" update -qq
	version=$(dpkg-query -W -f='${source:Version}' libfaiss-dev)
	(cd "$apt_dir/src" && apt-get "${aptopt[@]}" source -qq --download-only "faiss=$version")
	dsc=$(ls "$apt_dir"/src/faiss_*.dsc | head -n 1)
	dpkg-source --no-check -x "$dsc" "$apt_dir/src/faiss" > /dev/null
	echo "deps: compiling the FAISS C API (c_api/*.cpp, no GPU)"
	rm -rf "$faiss_dir" && mkdir -p "$faiss_dir/obj"
	src=$apt_dir/src/faiss
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
touch "$stamp"
echo "deps: done"
