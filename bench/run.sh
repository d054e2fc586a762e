#!/usr/bin/env bash
# ./build.sh bench: every benchmark, each printing its ratios against a
# reference measured in the same run. RELYLOOP_BENCH_SECONDS shortens runs.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export RELYLOOP_BUILD_DIR=${RELYLOOP_BUILD_DIR:-$HERE/../build}
export RELYLOOP_MODULE=${RELYLOOP_MODULE:-$RELYLOOP_BUILD_DIR/ngx_http_relyloop_module.so}
export RELYLOOP_WORKER=${RELYLOOP_WORKER:-$RELYLOOP_BUILD_DIR/relyloop-worker}
export RELYLOOP_TEST_WORKER=${RELYLOOP_TEST_WORKER:-$RELYLOOP_BUILD_DIR/cmake-release/relyloop-test-worker}

only=${1:-all}
run() { [ "$only" = all ] || [ "$only" = "$1" ]; }

run api && perl "$HERE/api_bench.pl"
run metrics && perl "$HERE/metrics_bench.pl"
run enqueue && perl "$HERE/enqueue_bench.pl"
run timeouts && perl "$HERE/timeouts_bench.pl"
run migrate && perl "$HERE/migrate_bench.pl"
run analytics && perl "$HERE/analytics_bench.pl"
run webhook && perl "$HERE/webhook_bench.pl"
run reconcile && perl "$HERE/reconcile_bench.pl"
if run pipeline; then
    for b in "$HERE"/pipeline_bench*; do
        [ -x "$b" ] && "$b"
    done
fi
exit 0
