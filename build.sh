#!/usr/bin/env bash
# relyloop-pr: the single entry point (README.md).
#
#   ./build.sh          build build/ngx_http_relyloop_module.so and build/relyloop-worker
#   ./build.sh test     unit + integration tests, plain and under ASan+UBSan
#   ./build.sh up       a local stack in the foreground (PostgreSQL, worker, nginx)
#   ./build.sh demo     the stack plus a local git server and GitHub stand-in; opens a PR
#   ./build.sh bench    the benchmarks, printed as ratios against references
#   ./build.sh fuzz [SECONDS]  each libFuzzer target of t/fuzz for SECONDS (30)
#   ./build.sh deb      Debian packages into build/deb/ (docs/install.md)
#   ./build.sh format   clang-format every C++ file (--check: report, change nothing)
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
    libsimdjson-dev libssl-dev libgtest-dev libgmock-dev fonts-dejavu-core ca-certificates)
TEST_PKGS=(postgresql-15 postgresql-contrib pgbouncer fcgiwrap git openssl python3 nodejs perl curl procps iproute2
    file libjson-validator-perl python3-prometheus-client clang-format)
BENCH_PKGS=(wrk)
FUZZ_PKGS=(clang libclang-rt-14-dev)
DEB_PKGS=(debhelper dpkg-dev fakeroot lintian)
REDOCLY=@redocly/cli@2.77.0

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# install_file SRC DST: a copy under a temporary name, then rename(2), so a
# process running (or nginx having mapped) the old DST keeps its old inode
# instead of seeing it rewritten ("Text file busy", or a module changing
# under running nginx workers).
install_file() {
    local tmp
    tmp="$(dirname "$2")/.$(basename "$2").tmp.$$"
    cp -f "$1" "$tmp" && mv -f "$tmp" "$2"
}

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
    # (rm unlinks: a process that loaded the old file keeps it; the linker
    # writes a new inode.)
    rm -f "$ngx"/*.so
    make -s -f "$ngx/Makefile" -C "$src" modules >/dev/null
}

# cmd_build [CMAKE_ARGS...]: the release variant (extra CMake arguments last).
cmd_build() {
    ensure_pkgs "${BUILD_PKGS[@]}"
    mkdir -p "$BUILD"
    build_variant release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELYLOOP_SANITIZE=OFF "$@"
    install_file "$BUILD/nginx-release/ngx_http_relyloop_module.so" "$BUILD/ngx_http_relyloop_module.so"
    if [ -x "$BUILD/cmake-release/relyloop-worker" ]; then
        install_file "$BUILD/cmake-release/relyloop-worker" "$BUILD/relyloop-worker"
    fi
    log "built $BUILD/ngx_http_relyloop_module.so and $BUILD/relyloop-worker"
}

# Sanitizer settings come from here and from the test harness only: none is
# inherited from the caller's environment.
clear_sanitizer_env() {
    local v
    for v in $(compgen -e); do
        case $v in
            *SAN_OPTIONS | *SAN_SYMBOLIZER_PATH) unset "$v" ;;
        esac
    done
}

# run_suite NAME [DB_KIND]: unit tests (CTest) and integration tests (prove)
# against one build variant. DB_KIND (own|upstream, RELYLOOP_DB_KIND) is the
# kind of database every test's migrate() prepares: own = migrate on an empty
# database, upstream = RelyLoop's 0023 schema (t/fixtures/relyloop-0023.sql)
# first (docs/upstream-schema.md).
run_suite() {
    local name=$1 kind=${2:-own}
    local cm=$BUILD/cmake-$name
    log "unit tests ($name)"
    # A sanitizer report ends the unit test with a failure (halt_on_error,
    # LeakSanitizer's exit code) and stays in its output on stderr.
    (
        cd "$cm"
        if [ "$name" = asan ]; then
            export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
            export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
            export LSAN_OPTIONS=suppressions=$ROOT/t/lsan.supp:print_suppressions=0
        fi
        ctest --output-on-failure --no-tests=error --timeout "${RELYLOOP_UNIT_TIMEOUT:-300}" -j"$JOBS"
    )
    log "integration tests ($name, $kind database)"
    # Each file fails itself after RELYLOOP_TEST_TIMEOUT seconds (t/lib/RelyLoop/Test.pm);
    # `timeout` is the backstop for a file that cannot (SIGTERM, then SIGKILL).
    local budget=${RELYLOOP_TEST_TIMEOUT:-}
    [ -n "$budget" ] || { [ "$name" = asan ] && budget=900 || budget=300; }
    PERL5LIB="$ROOT/t/lib${PERL5LIB:+:$PERL5LIB}" \
    RELYLOOP_DB_KIND=$kind \
    RELYLOOP_VARIANT=$name \
    RELYLOOP_MODULE=$BUILD/nginx-$name/ngx_http_relyloop_module.so \
    RELYLOOP_WORKER=$cm/relyloop-worker \
    RELYLOOP_TEST_WORKER=$cm/relyloop-test-worker \
        prove -I"$ROOT/t/lib" -j"${RELYLOOP_TEST_JOBS:-2}" --timer \
            --exec "timeout --foreground -k 30 $((budget + 120)) perl" "${PROVE_ARGS[@]}"
}

cmd_test() {
    clear_sanitizer_env
    ensure_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
    cmd_format --check
    cmd_build -DRELYLOOP_TESTS=ON
    PROVE_ARGS=("$@")
    [ ${#PROVE_ARGS[@]} -eq 0 ] && PROVE_ARGS=("$ROOT"/t/*.t)
    # t/package_deb.t installs the packages (root only): build them first
    if [ "$(id -u)" = 0 ] && printf '%s\n' "${PROVE_ARGS[@]}" | grep -q 'package_deb\.t$'; then
        cmd_deb
    fi
    # Both kinds of database, at no extra cost: the release run on our own
    # databases, the ASan run on upstream RelyLoop ones.
    run_suite release own
    build_variant asan -DCMAKE_BUILD_TYPE=Debug -DRELYLOOP_SANITIZE=ON -DRELYLOOP_TESTS=ON
    run_suite asan upstream
    cmd_fuzz 30
    log "all tests passed (release on own databases, asan on upstream ones, fuzz targets 30 s each)"
}

# ./build.sh up [--no-build] [--demo]: PostgreSQL (kept under .run/pg),
# migrations, the worker and nginx with the module, in the foreground until
# Ctrl-C or SIGTERM. --no-build runs what $BUILD already holds
# (RELYLOOP_BUILD_DIR may name another checkout's build). --demo (also
# `./build.sh demo`) adds a local git server and GitHub stand-in and opens a
# PR through them (docs/runbook.md, "The demo").
cmd_up() {
    local demo=0 build=1 a
    for a in "$@"; do
        case $a in
            --no-build) build=0 ;;
            --demo) demo=1 ;;
            *) die "up: unknown option '$a' (--no-build, --demo)" ;;
        esac
    done
    ensure_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"

    local run=$ROOT/.run pgbin=/usr/lib/postgresql/15/bin
    local port=${RELYLOOP_PORT:-8080} pgport=${RELYLOOP_PG_PORT:-54329}
    local env=${RELYLOOP_ENVIRONMENT:-development}
    local web=${RELYLOOP_GITHUB_WEB_URL:-https://github.com}
    local api=${RELYLOOP_GITHUB_API_URL:-https://api.github.com}
    local gitport=${RELYLOOP_DEMO_GIT_PORT:-$((port + 1))}
    local ghport=${RELYLOOP_DEMO_GITHUB_PORT:-$((port + 2))}
    local pgdata=$run/pg
    mkdir -p "$run"
    # Before building or starting anything: a running stack keeps running.
    if [ $demo = 1 ]; then
        up_refuse_if_running "$run" "$port" "$pgport" "$gitport" "$ghport"
    else
        up_refuse_if_running "$run" "$port" "$pgport"
    fi
    if [ $build = 1 ]; then
        cmd_build
    fi
    if [ ! -x "$BUILD/relyloop-worker" ] || [ ! -f "$BUILD/ngx_http_relyloop_module.so" ]; then
        die "no relyloop-worker and module in $BUILD; run ./build.sh first"
    fi
    echo $$ >"$run/up.pid"
    UP_RUN=$run
    trap 'stop_stack 0' INT TERM
    trap 'stop_stack $?' EXIT

    AS_PG=()
    mkdir -p "$run"/{secrets,clones,logs,nginx/conf,nginx/logs,nginx/tmp}
    # docs/security.md: PAT files 0600 owned by the worker's user, in a
    # directory nginx can traverse but not list (nginx only stat()s them);
    # clones are the worker's alone.
    chmod 711 "$run/secrets"
    chmod 700 "$run/clones"

    # PostgreSQL refuses to run as root: run it as "postgres", with its data
    # where that user can reach it (a 0700 home directory is not), named by
    # its real path, from a working directory it can enter.
    if [ "$(id -u)" = 0 ]; then
        AS_PG=(runuser -u postgres --)
        if [ ! -e "$pgdata" ] && ! as_pg test -x "$run"; then
            local alt
            alt=/var/tmp/relyloop-pg-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)
            mkdir -p "$alt" && ln -sfn "$alt" "$pgdata"
        fi
        mkdir -p "$pgdata/"
        pgdata=$(readlink -f "$pgdata")
        chown -R postgres:postgres "$pgdata"
        as_pg test -x "$pgdata" ||
            die "user postgres cannot reach $pgdata; move $run/pg away (its databases go with it) and rerun"
    else
        mkdir -p "$pgdata/"
        pgdata=$(readlink -f "$pgdata")
    fi

    if [ $demo = 1 ]; then
        env=development    # the seed endpoint exists there only
        demo_services "$run" "$gitport" "$ghport"
        web=$DEMO_WEB_URL
        api=$DEMO_API_URL
    fi

    if [ ! -f "$pgdata/data/PG_VERSION" ]; then
        log "initdb $pgdata/data"
        as_pg "$pgbin/initdb" -D "$pgdata/data" -U postgres -A trust -E UTF8 \
            --locale=C.UTF-8 >"$run/logs/initdb.log"
    fi
    log "postgresql on 127.0.0.1:$pgport"
    as_pg "$pgbin/pg_ctl" -D "$pgdata/data" -l "$pgdata/server.log" -w -t 60 \
        -o "-p $pgport -c listen_addresses=127.0.0.1 -k ''" start >/dev/null
    UP_PGDATA=$pgdata
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
        location = /webhooks/github { relyloop_webhook; }
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

    local _
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1; then
            echo "relyloop-pr ready: http://127.0.0.1:$port (environment $env; psql: . .run/env)"
            if [ $demo = 1 ]; then
                perl -I"$ROOT/t/lib" "$ROOT/t/tools/demo.pl" run --dir "$run/demo" \
                    --api "http://127.0.0.1:$port" --clone-root "$run/clones" ||
                    die "demo: failed; logs in $run/logs and $run/demo"
            fi
            wait -n "${UP_PIDS[@]}" || true
            log "a component exited; see $run/logs and $run/nginx/logs"
            stop_stack 1
        fi
        sleep 0.1
    done
    curl -sS "http://127.0.0.1:$port/api/v1/health" >&2 || true
    die "the stack did not become healthy; logs in $run/logs and $run/nginx/logs"
}

UP_PIDS=()
UP_PGDATA=""
UP_RUN=""
AS_PG=()

# as_pg CMD...: CMD as the postgres user when root (else as is), from "/":
# PostgreSQL's tools complain when they cannot enter their working directory.
as_pg() {
    (cd / && "${AS_PG[@]}" "$@")
}

# up_refuse_if_running RUN PORT...: a second `up` from the same checkout, or
# anything already listening on one of the ports, stops here with a message,
# before anything is built or started.
up_refuse_if_running() {
    local run=$1 pid p
    shift
    pid=$(cat "$run/up.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$pid" != $$ ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'build\.sh'; then
        die "a stack from this checkout is already running (build.sh pid $pid); stop it (Ctrl-C there, or kill $pid) first"
    fi
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            die "127.0.0.1:$p is already in use (another stack?); stop it, or choose other ports (RELYLOOP_PORT, RELYLOOP_PG_PORT, RELYLOOP_DEMO_GIT_PORT, RELYLOOP_DEMO_GITHUB_PORT)"
        fi
    done
}

# demo_services RUN GITPORT GHPORT: the demo's git smart-HTTP server (nginx +
# fcgiwrap + git http-backend) and GitHub stand-in (t/tools/fake_github.py),
# started by t/tools/demo.pl with the test harness's modules; sets
# DEMO_WEB_URL and DEMO_API_URL.
demo_services() {
    local run=$1 _
    mkdir -p "$run/demo"
    rm -f "$run/demo/services.env"
    perl -I"$ROOT/t/lib" "$ROOT/t/tools/demo.pl" services --dir "$run/demo" \
        --secrets-dir "$run/secrets" --git-port "$2" --github-port "$3" \
        >>"$run/logs/demo-services.log" 2>&1 &
    UP_PIDS+=($!)
    for _ in $(seq 1 300); do
        [ -f "$run/demo/services.env" ] && break
        kill -0 "${UP_PIDS[-1]}" 2>/dev/null ||
            { tail -20 "$run/logs/demo-services.log" >&2; die "demo: the git server or GitHub stand-in did not start"; }
        sleep 0.1
    done
    [ -f "$run/demo/services.env" ] || die "demo: the services did not come up; see $run/logs/demo-services.log"
    # shellcheck disable=SC1091
    . "$run/demo/services.env"
    log "demo: git server $DEMO_WEB_URL, GitHub stand-in $DEMO_API_URL"
}

# stop_stack STATUS: everything `up` started, in reverse, then exit STATUS.
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
        as_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$UP_PGDATA/data" -m fast -w stop \
            >/dev/null 2>&1 || true
    fi
    if [ -n "$UP_RUN" ] && [ "$(cat "$UP_RUN/up.pid" 2>/dev/null)" = $$ ]; then
        rm -f "$UP_RUN/up.pid"
    fi
    exit "${1:-0}"
}

# ./build.sh fuzz [SECONDS]: builds the libFuzzer targets of t/fuzz with clang
# (ASan+UBSan, build/cmake-fuzz) and runs each for SECONDS, two at a time, on
# its checked-in seed corpus (read only: new inputs and crash files go to a
# temporary directory). Fails when any target finds a crash, a leak or a
# hang. docs/testing.md has the targets and how to reproduce a finding.
cmd_fuzz() {
    local secs=${1:-30}
    [[ $secs =~ ^[1-9][0-9]*$ ]] || die "fuzz: SECONDS must be a positive integer"
    ensure_pkgs "${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}"
    local cm=$BUILD/cmake-fuzz par=${RELYLOOP_FUZZ_JOBS:-2} f t work
    local -a targets=()
    for f in "$ROOT"/t/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
    log "fuzz targets (clang, ASan+UBSan): ${targets[*]}"
    cmake -S "$ROOT" -B "$cm" -G "Unix Makefiles" -DCMAKE_C_COMPILER=clang \
        -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELYLOOP_TESTS=OFF \
        -DRELYLOOP_FUZZ=ON >/dev/null
    cmake --build "$cm" -j"$JOBS" --target "${targets[@]}"

    work=$(mktemp -d "${TMPDIR:-/tmp}/relyloop-fuzz.XXXXXX")
    log "fuzzing ${#targets[@]} targets for ${secs} s each, $par at a time (work dir $work)"
    for t in "${targets[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n || true; done
        mkdir -p "$work/$t/corpus" "$work/$t/crashes"
        (
            rc=0
            "$cm/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$work/$t/crashes/" \
                "$work/$t/corpus" "$ROOT/t/fuzz/corpus/$t" >"$work/$t/log" 2>&1 || rc=$?
            echo "$rc" >"$work/$t/rc"
        ) &
    done
    wait
    local failed=() execs rate corp
    for t in "${targets[@]}"; do
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t/log")
        corp=$(find "$work/$t/corpus" "$ROOT/t/fuzz/corpus/$t" -type f 2>/dev/null | wc -l)
        if [ "$(cat "$work/$t/rc" 2>/dev/null)" != 0 ]; then
            failed+=("$t")
            printf '  %-20s FAILED (rc %s)\n' "$t" "$(cat "$work/$t/rc" 2>/dev/null || echo '?')" >&2
            grep -E 'ERROR|SUMMARY|survived|abort|gave|Test unit written' "$work/$t/log" | head -20 >&2 || true
        else
            printf '  %-20s ok: %s execs, %s exec/s, corpus %s inputs\n' "$t" "${execs:-?}" \
                "${rate:-?}" "$corp" >&2
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        die "fuzz: ${failed[*]} failed; logs and crash inputs in $work (reproduce: $cm/<target> <crash file>)"
    fi
    rm -rf "$work"
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

# ./build.sh format [--check]: the repository's .clang-format over every C++
# file git tracks. C files and the C API header keep nginx's style, which
# clang-format cannot express (docs/decisions.md, "Formatting").
format_files() {
    git -C "$ROOT" ls-files -z '*.cpp' '*.hpp'
}

cmd_format() {
    command -v clang-format >/dev/null || ensure_pkgs clang-format
    if [ "${1:-}" = --check ]; then
        log "clang-format --dry-run -Werror ($(clang-format --version | grep -o '[0-9][0-9.]*' | head -1))"
        (cd "$ROOT" && format_files | xargs -0 clang-format --dry-run -Werror) ||
            die "files not formatted: run ./build.sh format"
    else
        (cd "$ROOT" && format_files | xargs -0 clang-format -i)
    fi
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
    up) shift; cmd_up "$@" ;;
    demo) shift; cmd_up --demo "$@" ;;
    bench) shift; cmd_bench "$@" ;;
    fuzz) shift; cmd_fuzz "$@" ;;
    deb) cmd_deb ;;
    lint) cmd_lint ;;
    format) shift; cmd_format "$@" ;;
    -h|--help|help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (build, test, up, demo, bench, fuzz, deb, lint, format)" ;;
esac
