#!/usr/bin/env bash
# relyloop-pr: the single entry point (SPEC §2).
#
#   ./build.sh          build build/ngx_http_relyloop_module.so and build/relyloop-worker
#   ./build.sh test     unit + integration tests, plain and under ASan+UBSan
#   ./build.sh up       a local stack in the foreground (PostgreSQL, worker, nginx)
#   ./build.sh bench    the benchmarks, printed as ratios against references
#   ./build.sh deb      Debian packages into build/deb/ (docs/install.md)
#   ./build.sh lint     Redocly's recommended rules on the served OpenAPI document (npm)
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
TEST_PKGS=(postgresql-15 postgresql-contrib fcgiwrap git openssl python3 perl curl procps iproute2
    file libjson-validator-perl python3-prometheus-client)
BENCH_PKGS=(wrk)
DEB_PKGS=(debhelper dpkg-dev fakeroot lintian)
REDOCLY=@redocly/cli@2.77.0

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
    local name=$1
    local cm=$BUILD/cmake-$name
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
    # t/package_deb.t installs the packages (root only): build them first
    if [ "$(id -u)" = 0 ] && printf '%s\n' "${PROVE_ARGS[@]}" | grep -q 'package_deb\.t$'; then
        cmd_deb
    fi
    run_suite release
    build_variant asan -DCMAKE_BUILD_TYPE=Debug -DRELYLOOP_SANITIZE=ON
    run_suite asan
    log "all tests passed (release and asan)"
}

# ./build.sh up: PostgreSQL (kept under .run/pg), migrations, the worker and
# nginx with the module, in the foreground until Ctrl-C or SIGTERM.
cmd_up() {
    ensure_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
    cmd_build

    local run=$ROOT/.run pgbin=/usr/lib/postgresql/15/bin
    local port=${RELYLOOP_PORT:-8080} pgport=${RELYLOOP_PG_PORT:-54329}
    local env=${RELYLOOP_ENVIRONMENT:-development}
    local web=${RELYLOOP_GITHUB_WEB_URL:-https://github.com}
    local api=${RELYLOOP_GITHUB_API_URL:-https://api.github.com}
    local pgdata=$run/pg
    AS_PG=()
    mkdir -p "$run"/{secrets,clones,logs,nginx/conf,nginx/logs,nginx/tmp}
    chmod 700 "$run/secrets"

    # PostgreSQL refuses to run as root: run it as "postgres", with its data
    # where that user can reach it (a 0700 home directory is not).
    if [ "$(id -u)" = 0 ]; then
        AS_PG=(runuser -u postgres --)
        if [ ! -e "$pgdata" ] && ! runuser -u postgres -- test -x "$run"; then
            local alt
            alt=/var/tmp/relyloop-pg-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)
            mkdir -p "$alt" && ln -sfn "$alt" "$pgdata"
        fi
        mkdir -p "$pgdata/" && chown -R postgres:postgres "$(readlink -f "$pgdata")"
    fi
    if [ ! -f "$pgdata/data/PG_VERSION" ]; then
        log "initdb $pgdata/data"
        "${AS_PG[@]}" "$pgbin/initdb" -D "$pgdata/data" -U postgres -A trust -E UTF8 \
            --locale=C.UTF-8 >"$run/logs/initdb.log"
    fi
    log "postgresql on 127.0.0.1:$pgport"
    "${AS_PG[@]}" "$pgbin/pg_ctl" -D "$pgdata/data" -l "$pgdata/server.log" -w -t 60 \
        -o "-p $pgport -c listen_addresses=127.0.0.1 -k ''" start >/dev/null
    UP_PGDATA=$pgdata
    trap stop_stack INT TERM EXIT
    psql -X -q -h 127.0.0.1 -p "$pgport" -U postgres -d postgres -Atc \
        "SELECT 1 FROM pg_database WHERE datname='relyloop'" | grep -q 1 ||
        createdb -h 127.0.0.1 -p "$pgport" -U postgres relyloop

    local conninfo="host=127.0.0.1 port=$pgport user=postgres dbname=relyloop"
    "$BUILD/relyloop-worker" migrate --pg-conninfo "$conninfo"

    printf 'export PGHOST=127.0.0.1\nexport PGPORT=%s\nexport PGDATABASE=relyloop\nexport PGUSER=postgres\n' \
        "$pgport" >"$run/env"

    local user="" cors=""
    [ "$(id -u)" = 0 ] && user="user root;"
    [ -n "${RELYLOOP_CORS_ORIGINS:-}" ] && cors="relyloop_cors_origins ${RELYLOOP_CORS_ORIGINS};"
    cat >"$run/nginx/conf/nginx.conf" <<EOF
load_module $BUILD/ngx_http_relyloop_module.so;
daemon off;
worker_processes 2;
$user
error_log $run/nginx/logs/error.log info;
pid $run/nginx/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log $run/nginx/logs/access.log;
    client_body_temp_path $run/nginx/tmp/body;
    proxy_temp_path $run/nginx/tmp/proxy;
    fastcgi_temp_path $run/nginx/tmp/fastcgi;
    uwsgi_temp_path $run/nginx/tmp/uwsgi;
    scgi_temp_path $run/nginx/tmp/scgi;
    relyloop_pg_conninfo "$conninfo";
    relyloop_worker_socket $run/worker.sock;
    relyloop_secrets_dir $run/secrets;
    relyloop_environment $env;
    relyloop_github_web_url $web;
    server {
        listen 127.0.0.1:$port reuseport;
        $cors
        error_page 400 413 414 494 /.relyloop/error;
        location = /.relyloop/error { internal; relyloop_api; }
        location /api/ {
            relyloop_api;
        }
        location = /metrics {
            relyloop_metrics;
            allow 127.0.0.1;
            deny all;
        }
    }
}
EOF
    nginx -t -q -p "$run/nginx" -c conf/nginx.conf -e "$run/nginx/logs/error.log"

    local -a wargs=(--pg-conninfo "$conninfo" --socket "$run/worker.sock"
        --secrets-dir "$run/secrets" --clone-root "$run/clones"
        --github-web-url "$web" --github-api-url "$api")
    [ -n "${RELYLOOP_BASE_URL:-}" ] && wargs+=(--base-url "$RELYLOOP_BASE_URL")
    "$BUILD/relyloop-worker" "${wargs[@]}" 2>>"$run/logs/worker.log" &
    UP_PIDS+=($!)
    nginx -p "$run/nginx" -c conf/nginx.conf -e "$run/nginx/logs/error.log" &
    UP_PIDS+=($!)

    local i
    for i in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1; then
            echo "relyloop-pr ready: http://127.0.0.1:$port (environment $env; psql: . .run/env)"
            wait -n "${UP_PIDS[@]}" || true
            log "a component exited; see $run/logs and $run/nginx/logs"
            stop_stack
        fi
        sleep 0.1
    done
    curl -sS "http://127.0.0.1:$port/api/v1/health" >&2 || true
    die "the stack did not become healthy; logs in $run/logs and $run/nginx/logs"
}

UP_PIDS=()
UP_PGDATA=""
AS_PG=()

stop_stack() {
    # a second Ctrl-C must not cut the cleanup short
    trap '' INT TERM
    trap - EXIT
    log "stopping"
    if [ ${#UP_PIDS[@]} -gt 0 ]; then
        kill -TERM "${UP_PIDS[@]}" 2>/dev/null || true
        wait "${UP_PIDS[@]}" 2>/dev/null || true
    fi
    if [ -n "$UP_PGDATA" ]; then
        "${AS_PG[@]}" /usr/lib/postgresql/15/bin/pg_ctl -D "$UP_PGDATA/data" -m fast -w stop \
            >/dev/null 2>&1 || true
    fi
    exit 0
}

cmd_bench() {
    ensure_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}"
    cmd_build
    exec "$ROOT/bench/run.sh" "$@"
}

# ./build.sh deb: libnginx-mod-http-relyloop and relyloop-worker, built by
# dpkg-buildpackage from a copy of the tree plus packaging/debian, then
# checked with lintian (errors fail the build).
cmd_deb() {
    ensure_pkgs "${BUILD_PKGS[@]}" "${DEB_PKGS[@]}"
    local version deb=$BUILD/deb
    version=$(sed -n 's/^project(relyloop_pr VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
    [ "$(dpkg-parsechangelog -l "$ROOT/packaging/debian/changelog" -S Version)" = "$version" ] ||
        die "packaging/debian/changelog is not at version $version (CMakeLists.txt)"
    local tree=$deb/relyloop-pr-$version
    rm -rf "$deb" && mkdir -p "$tree"
    # the sources as git sees them (tracked and new, not ignored), then debian/
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard -- . ':!build' ':!.run' |
        xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf - | tar -xf - -C "$tree")
    cp -a "$ROOT/packaging/debian" "$tree/debian"
    log "dpkg-buildpackage ($tree)"
    (cd "$tree" && dpkg-buildpackage -b -us -uc -j"$JOBS") >"$deb/build.log" 2>&1 ||
        { tail -40 "$deb/build.log" >&2; die "dpkg-buildpackage failed; see $deb/build.log"; }
    rm -rf "$tree"
    log "lintian"
    local changes
    changes=$(ls "$deb"/relyloop-pr_"$version"_*.changes)
    lintian --fail-on error --tag-display-limit 0 "$changes" | tee "$deb/lintian.log" >&2 ||
        die "lintian reports errors (see $deb/lintian.log)"
    log "built $(cd "$deb" && ls ./*.deb | tr '\n' ' ')"
}

# ./build.sh lint: the OpenAPI document as the built module serves it, linted
# with Redocly's recommended ruleset (fetched by npx: needs the npm registry).
# Errors fail; warnings are printed.
cmd_lint() {
    ensure_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
    command -v npx >/dev/null || ensure_pkgs nodejs npm
    cmd_build
    local doc=$BUILD/openapi.json
    RELYLOOP_MODULE=$BUILD/nginx-release/ngx_http_relyloop_module.so \
    RELYLOOP_WORKER=$BUILD/cmake-release/relyloop-worker \
        perl "$ROOT/t/tools/served_openapi.pl" "$doc" >"$BUILD/served_openapi.log" 2>&1 ||
        { cat "$BUILD/served_openapi.log" >&2; die "could not fetch the served document"; }
    log "redocly lint (recommended) $doc"
    (cd "$BUILD" && npx --yes "$REDOCLY" lint --extends=recommended --format=stylish "$doc")
}

case "${1:-build}" in
    build) cmd_build ;;
    test) shift; cmd_test "$@" ;;
    up) cmd_up ;;
    bench) shift; cmd_bench "$@" ;;
    deb) cmd_deb ;;
    lint) cmd_lint ;;
    -h|--help|help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (build, test, up, bench, deb, lint)" ;;
esac
