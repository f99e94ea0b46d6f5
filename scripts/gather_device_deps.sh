#!/usr/bin/env bash
# scripts/gather_device_deps.sh [DEST] — on this Debian 12 machine, copy everything a build on the
# lent GPU machine needs besides LibTorch into DEST (default device_deps/, ignored by git), and a
# Fashion-MNIST subset into device_data/ (also ignored), so that a device `run` can carry both
# (carry: ["device_deps", "device_data"]) and scripts/device_build.sh can build there: that
# machine has PyTorch (LibTorch inside) but no network and no Debian packages.
#
#   scripts/gather_device_deps.sh              gather into device_deps/ and device_data/
#   FMNIST_TRAIN=0 scripts/gather_device_deps.sh   the whole training split (26 MB) instead of
#                                              the first 12,000 images; FMNIST=0 skips the data
#
# DEST holds, from the installed Debian packages (`dpkg -L`):
#   include/         headers of CAF 0.17, toml++, spdlog, fmt, prometheus-cpp, nlohmann-json,
#                    GoogleTest/gmock, zlib, libjpeg (jconfig.h moved up from the multiarch
#                    folder), PCRE2 and stb
#   lib/             libcaf_core/io/openssl, libtomlplusplus, libprometheus-cpp-core/push,
#                    libspdlog, libfmt, libpcre2-8, libz, libjpeg (each with its SONAME and
#                    lib*.so links) and GoogleTest's static libgtest*/libgmock*.a
#   lib/cmake/, share/cmake/
#                    the CMake configs of tomlplusplus, spdlog, fmt, GTest (Debian's, moved from
#                    lib/x86_64-linux-gnu/cmake and rewritten to find themselves one level
#                    higher), nlohmann_json (unchanged: already relative) and prometheus-cpp
#                    (written here: Debian's pulls in civetweb, CURL and the pull library, none
#                    of which the project links), so CMAKE_PREFIX_PATH=DEST finds them all
#   runtime/         what the libraries above need at run time beyond glibc and libgcc_s
#                    (libcurl for prometheus-cpp-push and its closure; libssl/libcrypto for
#                    libcaf_openssl), found with ldd; device_build.sh uses one only where the
#                    machine lacks that SONAME
#   runtime/libstdcxx/libstdc++.so.6
#                    Debian's (GCC 12, up to GLIBCXX_3.4.30); device_build.sh puts it first on
#                    LD_LIBRARY_PATH only if the machine's libstdc++ lacks a version these need
#   MANIFEST.txt     package versions, the GLIBC/GLIBCXX versions the libraries need, sizes
#
# ABI, checked when this was written (and again by this script, see MANIFEST.txt): every C++
# library above exports std::__cxx11 symbols (Debian builds with _GLIBCXX_USE_CXX11_ABI=1, the
# GCC default), as PyTorch 2.x wheels do (torch._C._GLIBCXX_USE_CXX11_ABI is True there;
# device_build.sh refuses a wheel where it is False). The libraries need at most GLIBC_2.34 and
# GLIBCXX_3.4.30 (objdump -T). The compiler there must accept Debian's headers (GCC >= 9).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/device_deps}"
data="$root/device_data"
multiarch=x86_64-linux-gnu
libdir=/usr/lib/$multiarch

packages=(libcaf-dev libtomlplusplus-dev libspdlog-dev libfmt-dev prometheus-cpp-dev nlohmann-json3-dev
          libgtest-dev libgmock-dev zlib1g-dev libjpeg62-turbo-dev libpcre2-dev libstb-dev libcurl4)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "gather_device_deps: not installed: ${missing[*]} (scripts/setup.sh installs them)" >&2
  exit 1
fi
for tool in objdump ldd python3; do
  command -v "$tool" >/dev/null || { echo "gather_device_deps: $tool is missing" >&2; exit 1; }
done

rm -rf "$dest"
mkdir -p "$dest"/{include,lib/cmake,share/cmake,runtime/libstdcxx}
echo "== headers"
# Every regular file (or link) a -dev package installs under /usr/include; the multiarch folder's
# files (jconfig.h) move up to include/ so one include directory serves all.
for p in libcaf-dev libtomlplusplus-dev libspdlog-dev libfmt-dev prometheus-cpp-dev nlohmann-json3-dev \
         libgtest-dev libgmock-dev zlib1g-dev libjpeg62-turbo-dev libpcre2-dev libstb-dev; do
  dpkg -L "$p" | while IFS= read -r f; do
    case "$f" in /usr/include/*) ;; *) continue ;; esac
    [ -f "$f" ] || [ -L "$f" ] || continue
    rel="${f#/usr/include/}"
    rel="${rel#"$multiarch"/}"
    mkdir -p "$dest/include/$(dirname "$rel")"
    cp -a "$f" "$dest/include/$rel"
  done
done

echo "== libraries"
# copy_shared NAME: lib/libNAME.so's real file, its SONAME link and the lib*.so link the linker opens.
copy_shared() {
  local real soname base
  real="$(readlink -f "$libdir/lib$1.so")"
  [ -f "$real" ] || { echo "gather_device_deps: $libdir/lib$1.so not found" >&2; exit 1; }
  base="$(basename "$real")"
  soname="$(objdump -p "$real" | awk '$1 == "SONAME" {print $2}')"
  cp "$real" "$dest/lib/$base"
  [ -n "$soname" ] && [ "$soname" != "$base" ] && ln -sf "$base" "$dest/lib/$soname"
  ln -sf "${soname:-$base}" "$dest/lib/lib$1.so"
}
shared=(caf_core caf_io tomlplusplus prometheus-cpp-core prometheus-cpp-push spdlog fmt pcre2-8 z jpeg)
[ -e "$libdir/libcaf_openssl.so" ] && shared+=(caf_openssl)
for l in "${shared[@]}"; do copy_shared "$l"; done
for a in gtest gtest_main gmock gmock_main; do cp "$libdir/lib$a.a" "$dest/lib/"; done

echo "== run-time closure (ldd)"
# Everything the shared libraries above load, less glibc's own libraries, libgcc_s and libstdc++
# (every machine with a C++ compiler has them; libstdc++ goes to runtime/libstdcxx instead) and
# what lib/ already holds.
glibc_re='^(libc|libm|libpthread|libdl|librt|libresolv|libutil|libanl|libnsl|ld-linux-x86-64|libgcc_s|libstdc\+\+)\.so'
for so in "$dest"/lib/*.so.*; do
  [ -L "$so" ] && continue
  ldd "$so" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r soname path; do
  [[ "$soname" =~ $glibc_re ]] && continue
  [ -e "$dest/lib/$soname" ] && continue
  cp -L "$path" "$dest/runtime/$soname"
done
cp -L "$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ && !found {print $NF; found = 1}')" \
  "$dest/runtime/libstdcxx/libstdc++.so.6"

echo "== CMake configs"
# Debian's configs live in lib/x86_64-linux-gnu/cmake/NAME, four levels below the prefix; here they
# sit in lib/cmake/NAME, three below, with the libraries in lib/. Rewritten: the multiarch folder
# dropped from paths, one "../" (PACKAGE_PREFIX_DIR) or one parent step (_IMPORT_PREFIX) fewer,
# and the "/usr move" check (which would put the prefix back to /usr) disabled.
for pkg in tomlplusplus spdlog fmt GTest; do
  mkdir -p "$dest/lib/cmake/$pkg"
  for f in "$libdir/cmake/$pkg"/*.cmake; do
    sed -e "s#/lib/$multiarch/#/lib/#g" \
        -e 's#\(CMAKE_CURRENT_LIST_DIR}/\.\./\.\./\.\.\)/\.\.\(/\?"\)#\1\2#' \
        -e 's#get_filename_component(_realOrig "[^"]*" REALPATH)#set(_realOrig "")#' \
        -e '/set(PACKAGE_PREFIX_DIR "\/usr")/d' -e '/set(_IMPORT_PREFIX "\/usr/d' \
        "$f" |
      awk '!dropped && index($0, "get_filename_component(_IMPORT_PREFIX \"${_IMPORT_PREFIX}\" PATH)") {dropped = 1; next} {print}' \
        >"$dest/lib/cmake/$pkg/$(basename "$f")"
  done
done
cp -r /usr/share/cmake/nlohmann_json "$dest/share/cmake/"
core_real="$(basename "$(readlink -f "$libdir/libprometheus-cpp-core.so")")"
push_real="$(basename "$(readlink -f "$libdir/libprometheus-cpp-push.so")")"
mkdir -p "$dest/lib/cmake/prometheus-cpp"
cat >"$dest/lib/cmake/prometheus-cpp/prometheus-cpp-config.cmake" <<EOF
# Written by scripts/gather_device_deps.sh: prometheus-cpp $(dpkg-query -W -f='${Version}' prometheus-cpp-dev)'s
# core and push libraries from Debian, as the targets Debian's config defines. Push links libcurl
# privately (device_deps/runtime/ has it for machines without one); pull is left out.
get_filename_component(_prom_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET prometheus-cpp::core)
  add_library(prometheus-cpp::core SHARED IMPORTED)
  set_target_properties(prometheus-cpp::core PROPERTIES
    IMPORTED_LOCATION "\${_prom_prefix}/lib/$core_real"
    IMPORTED_SONAME "$(objdump -p "$libdir/$core_real" | awk '$1 == "SONAME" {print $2}')"
    INTERFACE_INCLUDE_DIRECTORIES "\${_prom_prefix}/include")
  add_library(prometheus-cpp::push SHARED IMPORTED)
  set_target_properties(prometheus-cpp::push PROPERTIES
    IMPORTED_LOCATION "\${_prom_prefix}/lib/$push_real"
    IMPORTED_SONAME "$(objdump -p "$libdir/$push_real" | awk '$1 == "SONAME" {print $2}')"
    INTERFACE_INCLUDE_DIRECTORIES "\${_prom_prefix}/include"
    INTERFACE_LINK_LIBRARIES prometheus-cpp::core)
endif()
unset(_prom_prefix)
set(prometheus-cpp_FOUND TRUE)
EOF
# Nothing but comments may still point into this machine's /usr (the configs must work from any folder).
if grep -rn -e '/usr/' -e "$multiarch" "$dest/lib/cmake" "$dest/share/cmake" | grep -v '\.cmake:[0-9]*:#'; then
  echo "gather_device_deps: the lines above still name Debian paths" >&2
  exit 1
fi

echo "== checks"
manifest="$dest/MANIFEST.txt"
{
  # shellcheck disable=SC1091
  echo "# device_deps, gathered $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME") by scripts/gather_device_deps.sh"
  echo "## packages"
  for p in "${packages[@]}"; do dpkg-query -W -f='${Package} ${Version}\n' "$p"; done
  echo "## what each library needs (highest symbol versions) and its C++ ABI (std::__cxx11 symbols defined/used)"
  glibc_max="" glibcxx_max=""
  for so in "$dest"/lib/*.so.* "$dest"/runtime/*.so*; do
    [ -L "$so" ] && continue
    g="$(objdump -T "$so" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1 || true)"
    x="$(objdump -T "$so" | grep -oE 'GLIBCXX_[0-9.]+' | sort -uV | tail -1 || true)"
    abi="$(nm -D "$so" 2>/dev/null | grep -c '__cxx11' || true)"
    echo "$(basename "$so") ${g:--} ${x:--} cxx11=$abi"
    glibc_max="$(printf '%s\n%s\n' "$glibc_max" "$g" | sort -V | tail -1)"
    glibcxx_max="$(printf '%s\n%s\n' "$glibcxx_max" "$x" | sort -V | tail -1)"
  done
  echo "## needs"
  echo "GLIBC_MAX=$glibc_max"
  echo "GLIBCXX_MAX=$glibcxx_max"
} >"$manifest"
# The C++ libraries must be new-ABI builds (PyTorch 2.x wheels are); C libraries show cxx11=0.
for l in caf_core caf_io tomlplusplus prometheus-cpp-core prometheus-cpp-push spdlog; do
  n="$(nm -D --defined-only "$dest/lib/lib$l.so" | grep -c '__cxx11' || true)"
  [ "$n" -gt 0 ] || { echo "gather_device_deps: lib$l.so defines no std::__cxx11 symbols: old C++ ABI?" >&2; exit 1; }
done
n="$(nm "$dest/lib/libgtest.a" 2>/dev/null | grep -c '__cxx11' || true)"
[ "$n" -gt 0 ] || { echo "gather_device_deps: libgtest.a has no std::__cxx11 symbols: old C++ ABI?" >&2; exit 1; }
grep -E '^GLIBC(XX)?_MAX=' "$manifest"
echo "C++11 ABI: every C++ library defines std::__cxx11 symbols (new ABI, as PyTorch 2.x wheels)"

if [ "${FMNIST:-1}" != 0 ]; then
  src=/usr/share/datasets/fashion-mnist
  if [ -d "$src" ]; then
    echo "== Fashion-MNIST subset -> $data/fashion-mnist"
    rm -rf "$data/fashion-mnist"
    mkdir -p "$data/fashion-mnist"
    # The first N items of a split, as IDX files with the count in the header changed to N
    # (0: all); the test split is kept whole, so global accuracy is on the official 10,000.
    python3 - "$src" "$data/fashion-mnist" "${FMNIST_TRAIN:-12000}" "${FMNIST_TEST:-0}" <<'PY'
import gzip, os, struct, sys
src, dst, n_train, n_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for split, n in (("train", n_train), ("t10k", n_test)):
    for kind, item in (("images-idx3", 28 * 28), ("labels-idx1", 1)):
        name = f"{split}-{kind}-ubyte.gz"
        raw = gzip.open(os.path.join(src, name)).read()
        dims = raw[3]
        header = 4 + 4 * dims
        count = struct.unpack(">I", raw[4:8])[0]
        keep = count if n <= 0 else min(n, count)
        out = raw[:4] + struct.pack(">I", keep) + raw[8:header] + raw[header:header + keep * item]
        with gzip.open(os.path.join(dst, name), "wb", compresslevel=9) as f:
            f.write(out)
        print(f"  {name}: {keep} of {count}")
PY
  else
    echo "== no $src (apt-get install dataset-fashion-mnist): the benchmarks that read it are skipped there"
  fi
fi

echo "== size"
du -sh "$dest"/include "$dest"/lib "$dest"/runtime
[ -d "$data" ] && du -sh "$data"
total_kib="$(du -sk "$dest" | cut -f1)"
[ -d "$data" ] && total_kib=$((total_kib + $(du -sk "$data" | cut -f1)))
echo "total $((total_kib / 1024)) MiB ($dest${data:+ + $data}); a run carries at most 64 MiB with the repository"
echo "size_kib=$(du -sk "$dest" | cut -f1)" >>"$manifest"
