#!/usr/bin/env bash
# relyloop-pr: the single entry point (SPEC §2).
#
#   ./build.sh          build build/ngx_http_relyloop_module.so and build/relyloop-worker
#   ./build.sh test     unit + integration tests, plain and under ASan+UBSan
#   ./build.sh up       a local stack in the foreground (PostgreSQL, worker, nginx)
#   ./build.sh bench    the benchmarks, printed as ratios against references
#
# Each sub-command installs the Debian packages it needs when they are missing
# (as root; otherwise it prints the apt-get command and stops).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# RELYLOOP_BUILD_DIR and RELYLOOP_CMAKE_TARGETS let a developer build a part
# of the tree into a scratch directory (default: everything, into build/).
BUILD=${RELYLOOP_BUILD_DIR:-$ROOT/build}
JOBS=$(nproc 2>/dev/null || echo 2)

BUILD_PKGS=(build-essential cmake pkg-config nginx nginx-dev libpq-dev libgit2-dev
    libcurl4-openssl-dev libjansson-dev libcairo2-dev libpcre2-dev libb2-dev
    libsimdjson-dev libgtest-dev libgmock-dev fonts-dejavu-core ca-certificates)
TEST_PKGS=(postgresql-15 postgresql-contrib fcgiwrap git openssl python3 perl curl procps
    file)
BENCH_PKGS=(wrk)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

ensure_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        die "missing packages; run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    fi
    log "installing ${missing[*]}"
    # Packages such as nginx and postgresql start a system service from
    # their postinst; this stack never uses those, so keep them stopped.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && created=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    [ $created = 1 ] && rm -f $policy
    return 0
}

# build_variant NAME CMAKE_ARGS... : the core, worker and unit tests with CMake,
# then the nginx module against Debian's nginx sources (--with-compat).
build_variant() {
    local name=$1; shift
    local cm=$BUILD/cmake-$name ngx=$BUILD/nginx-$name san=""
    [ "$name" = asan ] && san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

    log "core and worker ($name)"
    cmake -S "$ROOT" -B "$cm" -G "Unix Makefiles" "$@" >/dev/null
    if [ -n "${RELYLOOP_CMAKE_TARGETS:-}" ]; then
        # shellcheck disable=SC2086
        cmake --build "$cm" -j"$JOBS" --target $RELYLOOP_CMAKE_TARGETS
    else
        cmake --build "$cm" -j"$JOBS"
    fi

    log "nginx module ($name)"
    local src=$BUILD/nginx-src stamp
    if [ ! -x "$src/configure" ]; then
        rm -rf "$src" && cp -a /usr/share/nginx/src "$src"
    fi
    stamp="$(cat "$ROOT/config" /usr/share/nginx/src/conf_flags) $san $cm"
    if [ ! -f "$ngx/Makefile" ] || [ "$(cat "$ngx/.relyloop-stamp" 2>/dev/null)" != "$stamp" ]; then
        (
            cd "$src"
            # shellcheck disable=SC1091
            . ./conf_flags
            RELYLOOP_LIB_DIR=$cm ./configure \
                --with-cc-opt="$(dpkg-buildflags --get CFLAGS) -fPIC $(dpkg-buildflags --get CPPFLAGS) $san" \
                --with-ld-opt="$(dpkg-buildflags --get LDFLAGS) -fPIC $san" \
                "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$ROOT" --builddir="$ngx" >"$BUILD/configure-$name.log" 2>&1
        ) || { tail -20 "$BUILD/configure-$name.log" >&2; die "nginx configure failed"; }
        printf '%s' "$stamp" >"$ngx/.relyloop-stamp"
    fi
    # The link rule does not depend on the core archives: force the relink.
    rm -f "$ngx"/*.so
    make -s -f "$ngx/Makefile" -C "$src" modules >/dev/null
}

cmd_build() {
    ensure_pkgs "${BUILD_PKGS[@]}"
    mkdir -p "$BUILD"
    build_variant release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELYLOOP_SANITIZE=OFF
    cp "$BUILD/nginx-release/ngx_http_relyloop_module.so" "$BUILD/ngx_http_relyloop_module.so"
    if [ -x "$BUILD/cmake-release/relyloop-worker" ]; then
        cp "$BUILD/cmake-release/relyloop-worker" "$BUILD/relyloop-worker"
    fi
    log "built $BUILD/ngx_http_relyloop_module.so and $BUILD/relyloop-worker"
}

# run_suite NAME: unit tests (CTest) and integration tests (prove) against one
# build variant.
run_suite() {
    local name=$1 cm=$BUILD/cmake-$name
    log "unit tests ($name)"
    (cd "$cm" && ctest --output-on-failure -j"$JOBS")
    log "integration tests ($name)"
    RELYLOOP_VARIANT=$name \
    RELYLOOP_MODULE=$BUILD/nginx-$name/ngx_http_relyloop_module.so \
    RELYLOOP_WORKER=$cm/relyloop-worker \
    RELYLOOP_TEST_WORKER=$cm/relyloop-test-worker \
        prove -I"$ROOT/t/lib" -j"${RELYLOOP_TEST_JOBS:-2}" --timer "${PROVE_ARGS[@]}"
}

cmd_test() {
    ensure_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
    cmd_build
    PROVE_ARGS=("$@")
    [ ${#PROVE_ARGS[@]} -eq 0 ] && PROVE_ARGS=("$ROOT"/t/*.t)
    run_suite release
    build_variant asan -DCMAKE_BUILD_TYPE=Debug -DRELYLOOP_SANITIZE=ON
    run_suite asan
    log "all tests passed (release and asan)"
}

cmd_up() {
    ensure_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
    cmd_build
    exec "$ROOT/t/tools/stack-up.sh"
}

cmd_bench() {
    ensure_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}"
    cmd_build
    exec "$ROOT/bench/run.sh" "$@"
}

case "${1:-build}" in
    build) cmd_build ;;
    test) shift; cmd_test "$@" ;;
    up) cmd_up ;;
    bench) shift; cmd_bench "$@" ;;
    -h|--help|help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (build, test, up, bench)" ;;
esac
