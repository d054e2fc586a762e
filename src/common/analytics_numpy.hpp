#pragma once

// The numpy-compatible building blocks of the study analytics
// (common/analytics.hpp; docs/analytics.md).
//
// The bootstrap interval is bit-compatible with numpy's
// `default_rng(42).choice(values, size=(1000, n), replace=True).mean(axis=1)`
// followed by `percentile(…, [2.5, 97.5])`, so RelyLoop's own UI and this
// server show the same numbers on a shared database.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace relyloop::analytics {

// --- numpy-compatible building blocks ------------------------------------

// numpy's PCG64 bit generator seeded as `PCG64(SeedSequence(entropy))`.
class Pcg64 {
  public:
    explicit Pcg64(uint64_t entropy);

    uint64_t next_uint64() noexcept;
    // The low half of a 64-bit draw, then its high half (numpy buffers it).
    uint32_t next_uint32() noexcept;
    // `Generator.integers(0, n)` for 1 ≤ n ≤ 2^32 (Lemire's bounded method
    // on 32-bit draws; n == 1 draws nothing).
    uint64_t bounded(uint64_t n) noexcept;

    // The 128-bit LCG state and increment (for tests).
    [[nodiscard]] unsigned __int128 state() const noexcept { return state_; }
    [[nodiscard]] unsigned __int128 inc() const noexcept { return inc_; }

  private:
    unsigned __int128 state_ = 0;
    unsigned __int128 inc_ = 0;
    bool has_uint32_ = false;
    uint32_t uinteger_ = 0;
};

// numpy's pairwise summation of a contiguous float64 run (add.reduce).
[[nodiscard]] double pairwise_sum(const double *a, size_t n) noexcept;

// numpy.percentile(sorted, q) with the default linear method; `sorted` is
// ascending and non-empty, q in [0, 100].
[[nodiscard]] double percentile_linear(std::span<const double> sorted, double q) noexcept;

// numpy.std(values, ddof=1); needs ≥ 2 values.
[[nodiscard]] double sample_stddev(std::span<const double> values);

// The `resamples` bootstrap means (unsorted, in draw order).
[[nodiscard]] std::vector<double> bootstrap_means(std::span<const double> values, int resamples,
                                                  uint64_t seed);

struct Interval {
    double low = 0;
    double high = 0;
};

// The 95% bootstrap interval: 1000 resamples, default_rng(42), percentiles
// 2.5 and 97.5. Needs ≥ 1 value.
[[nodiscard]] Interval bootstrap_ci95(std::span<const double> values);

}  // namespace relyloop::analytics
