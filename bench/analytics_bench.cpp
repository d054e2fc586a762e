// The study analytics (docs/analytics.md) for a study of 2,000 trials × 500
// queries: the 13 input columns as PostgreSQL sends them (JSON text), then
// input parsing, confidence (with the 1000-resample bootstrap), convergence
// and the PR-body lines. Prints the median and best time of each part over
// the runs, the reference of one plain pass over the same 1000 × 500 draws
// without the numpy-compatible machinery (ratio), and the peak resident
// memory of the process before and after.
//
//   analytics_bench [trials=2000] [queries=500] [runs=15]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "common/analytics.hpp"

using namespace relyloop;
using Clock = std::chrono::steady_clock;

namespace {

// VmHWM of this process (getrusage's ru_maxrss survives exec, so it would
// report the parent's peak when started from a script).
long peak_rss_kib() {
    FILE *f = fopen("/proc/self/status", "r");
    if (f == nullptr) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f) != nullptr) {
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    }
    fclose(f);
    return kib;
}

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string pqm(int queries, std::mt19937_64 &rng) {
    std::uniform_real_distribution<double> u(0, 1);
    std::string s = "{";
    char buf[96];
    for (int q = 0; q < queries; q++) {
        snprintf(buf, sizeof buf, "%s\"q%05d\": {\"ndcg@10\": %.4f, \"map\": %.4f}", q ? ", " : "",
                 q, u(rng), u(rng));
        s += buf;
    }
    return s + "}";
}

struct Stat {
    std::vector<double> ms;
    void add(double v) { ms.push_back(v); }
    double median() {
        std::sort(ms.begin(), ms.end());
        return ms[ms.size() / 2];
    }
    double best() { return *std::min_element(ms.begin(), ms.end()); }
};

}  // namespace

int main(int argc, char **argv) {
    const int trials = argc > 1 ? std::atoi(argv[1]) : 2000;
    const int queries = argc > 2 ? std::atoi(argv[2]) : 500;
    const int runs = argc > 3 ? std::atoi(argv[3]) : 15;
    const long rss_start = peak_rss_kib();

    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(0.3, 0.5);
    std::string series = "[";
    for (int i = 0; i < trials; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s[%d, %.6f]", i ? ", " : "", i, u(rng));
        series += buf;
    }
    series += "]";
    std::string winner = pqm(queries, rng);
    std::string runner = pqm(queries, rng);
    std::string texts = "{";
    for (int q = 0; q < queries; q++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s\"q%05d\": \"query text number %d\"", q ? ", " : "", q, q);
        texts += buf;
    }
    texts += "}";
    const std::string best_number = std::to_string(trials * 9 / 10);
    std::vector<std::optional<std::string_view>> cols = {
        "completed",  R"({"k": 10, "metric": "ndcg", "direction": "maximize"})",
        "0.5",        "t",
        best_number,  "0.5",
        winner,       "f",
        std::nullopt, "t",
        runner,       series,
        texts};
    const long rss_inputs = peak_rss_kib();

    Stat parse, conf, conv, lines, total, reference;
    size_t sink = 0;
    for (int r = 0; r < runs; r++) {
        auto t0 = Clock::now();
        analytics::StudyInput in = analytics::input_from_columns(cols);
        parse.add(ms_since(t0));
        auto t1 = Clock::now();
        Json c = analytics::confidence(in);
        conf.add(ms_since(t1));
        auto t2 = Clock::now();
        Json v = analytics::convergence(in);
        conv.add(ms_since(t2));
        auto t3 = Clock::now();
        sink += analytics::confidence_lines(c.get()).size();
        lines.add(ms_since(t3));
        total.add(ms_since(t0));
        sink += json_array_size(json_object_get(v.get(), "best_so_far_curve"));

        // Reference: the same number of index draws and row sums with the
        // standard library's generator and a plain loop.
        auto t4 = Clock::now();
        std::mt19937_64 g(42);
        std::uniform_int_distribution<size_t> pick(0, static_cast<size_t>(queries) - 1);
        std::vector<double> vals(static_cast<size_t>(queries), 0.5);
        double acc = 0;
        for (int row = 0; row < 1000; row++) {
            double s = 0;
            for (int j = 0; j < queries; j++) s += vals[pick(g)];
            acc += s / queries;
        }
        sink += static_cast<size_t>(acc);
        reference.add(ms_since(t4));
    }
    const long rss_end = peak_rss_kib();

    printf("analytics: %d trials x %d queries, %d runs (sink %zu)\n", trials, queries, runs, sink);
    printf("  parse inputs      median %8.3f ms  best %8.3f ms\n", parse.median(), parse.best());
    printf("  confidence        median %8.3f ms  best %8.3f ms\n", conf.median(), conf.best());
    printf("  convergence       median %8.3f ms  best %8.3f ms\n", conv.median(), conv.best());
    printf("  PR lines          median %8.3f ms  best %8.3f ms\n", lines.median(), lines.best());
    printf("  total             median %8.3f ms  best %8.3f ms\n", total.median(), total.best());
    printf("  reference (plain mt19937 bootstrap loop) median %8.3f ms\n", reference.median());
    printf("  ratio total / reference: %.2f\n", total.median() / reference.median());
    printf("  peak RSS: start %ld KiB, with inputs %ld KiB, end %ld KiB (analytics +%ld KiB)\n",
           rss_start, rss_inputs, rss_end, rss_end - rss_inputs);
    return 0;
}
