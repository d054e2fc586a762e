// The numpy-compatible building blocks of the study analytics (common/analytics_numpy.hpp):
// PCG64 seeded through SeedSequence, pairwise summation, the linear percentile, the
// sample standard deviation and the bootstrap.

#include "common/analytics_numpy.hpp"

#include <algorithm>
#include <cmath>

namespace relyloop::analytics {

namespace {

using u128 = unsigned __int128;

// --- numpy's SeedSequence (pool of 4 uint32 words) -------------------------

constexpr uint32_t kInitA = 0x43b0d7e5;
constexpr uint32_t kMultA = 0x931e8875;
constexpr uint32_t kInitB = 0x8b51f9dd;
constexpr uint32_t kMultB = 0x58f38ded;
constexpr uint32_t kMixMultL = 0xca01f9dd;
constexpr uint32_t kMixMultR = 0x4973f715;
constexpr int kXShift = 16;
constexpr size_t kPoolSize = 4;

uint32_t hashmix(uint32_t value, uint32_t &hash_const) {
    value ^= hash_const;
    hash_const *= kMultA;
    value *= hash_const;
    value ^= value >> kXShift;
    return value;
}

uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t result = kMixMultL * x - kMixMultR * y;
    result ^= result >> kXShift;
    return result;
}

// SeedSequence(entropy).generate_state(words, uint32).
std::vector<uint32_t> seed_sequence_state(uint64_t entropy, size_t words) {
    // An integer entropy becomes its little-endian uint32 words ([0] for 0).
    std::vector<uint32_t> ent;
    if (entropy == 0) {
        ent.push_back(0);
    }
    while (entropy != 0) {
        ent.push_back(static_cast<uint32_t>(entropy & 0xffffffffu));
        entropy >>= 32;
    }
    uint32_t pool[kPoolSize];
    uint32_t hash_const = kInitA;
    for (size_t i = 0; i < kPoolSize; i++) {
        pool[i] = hashmix(i < ent.size() ? ent[i] : 0, hash_const);
    }
    for (size_t src = 0; src < kPoolSize; src++) {
        for (size_t dst = 0; dst < kPoolSize; dst++) {
            if (src != dst) {
                pool[dst] = mix(pool[dst], hashmix(pool[src], hash_const));
            }
        }
    }
    for (size_t src = kPoolSize; src < ent.size(); src++) {
        for (size_t dst = 0; dst < kPoolSize; dst++) {
            pool[dst] = mix(pool[dst], hashmix(ent[src], hash_const));
        }
    }
    std::vector<uint32_t> out(words);
    uint32_t hc = kInitB;
    for (size_t i = 0; i < words; i++) {
        uint32_t v = pool[i % kPoolSize];
        v ^= hc;
        hc *= kMultB;
        v *= hc;
        v ^= v >> kXShift;
        out[i] = v;
    }
    return out;
}

constexpr u128 kPcgMult =
    (static_cast<u128>(2549297995355413924ULL) << 64) | 4865540595714422341ULL;

}  // namespace

// --- PCG64 (XSL-RR 128/64), seeded as numpy does ---------------------------

Pcg64::Pcg64(uint64_t entropy) {
    std::vector<uint32_t> w = seed_sequence_state(entropy, 8);
    uint64_t v[4];
    for (size_t i = 0; i < 4; i++) {
        v[i] = static_cast<uint64_t>(w[2 * i]) | (static_cast<uint64_t>(w[2 * i + 1]) << 32);
    }
    u128 initstate = (static_cast<u128>(v[0]) << 64) | v[1];
    u128 initseq = (static_cast<u128>(v[2]) << 64) | v[3];
    state_ = 0;
    inc_ = (initseq << 1) | 1;
    state_ = state_ * kPcgMult + inc_;
    state_ += initstate;
    state_ = state_ * kPcgMult + inc_;
}

uint64_t Pcg64::next_uint64() noexcept {
    state_ = state_ * kPcgMult + inc_;
    auto hi = static_cast<uint64_t>(state_ >> 64);
    auto lo = static_cast<uint64_t>(state_);
    uint64_t x = hi ^ lo;
    unsigned rot = static_cast<unsigned>(hi >> 58);
    return (x >> rot) | (x << ((64 - rot) & 63));
}

uint32_t Pcg64::next_uint32() noexcept {
    if (has_uint32_) {
        has_uint32_ = false;
        return uinteger_;
    }
    uint64_t next = next_uint64();
    has_uint32_ = true;
    uinteger_ = static_cast<uint32_t>(next >> 32);
    return static_cast<uint32_t>(next & 0xffffffffu);
}

uint64_t Pcg64::bounded(uint64_t n) noexcept {
    if (n <= 1) {
        return 0;
    }
    uint64_t rng = n - 1;
    if (rng == 0xffffffffULL) {
        return next_uint32();
    }
    auto rng_excl = static_cast<uint32_t>(n);
    uint64_t m = static_cast<uint64_t>(next_uint32()) * rng_excl;
    auto leftover = static_cast<uint32_t>(m & 0xffffffffu);
    if (leftover < rng_excl) {
        uint32_t threshold = (UINT32_MAX - static_cast<uint32_t>(rng)) % rng_excl;
        while (leftover < threshold) {
            m = static_cast<uint64_t>(next_uint32()) * rng_excl;
            leftover = static_cast<uint32_t>(m & 0xffffffffu);
        }
    }
    return m >> 32;
}

double pairwise_sum(const double *a, size_t n) noexcept {
    constexpr size_t kBlock = 128;
    if (n < 8) {
        double res = 0.;
        for (size_t i = 0; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    if (n <= kBlock) {
        double r[8];
        for (size_t j = 0; j < 8; j++) {
            r[j] = a[j];
        }
        size_t i = 8;
        for (; i < n - (n % 8); i += 8) {
            for (size_t j = 0; j < 8; j++) {
                r[j] += a[i + j];
            }
        }
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

double percentile_linear(std::span<const double> sorted, double q) noexcept {
    size_t n = sorted.size();
    double quantile = q / 100.0;
    double virtual_index = static_cast<double>(n - 1) * quantile;
    double prev = std::floor(virtual_index);
    double gamma = virtual_index - prev;
    auto pi = static_cast<size_t>(prev);
    size_t ni = std::min(pi + 1, n - 1);
    pi = std::min(pi, n - 1);
    double a = sorted[pi];
    double b = sorted[ni];
    double diff = b - a;
    // numpy's _lerp: from the nearer end.
    return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

double sample_stddev(std::span<const double> values) {
    size_t n = values.size();
    double mean = pairwise_sum(values.data(), n) / static_cast<double>(n);
    std::vector<double> sq(n);
    for (size_t i = 0; i < n; i++) {
        double d = values[i] - mean;
        sq[i] = d * d;
    }
    return std::sqrt(pairwise_sum(sq.data(), n) / static_cast<double>(n - 1));
}

std::vector<double> bootstrap_means(std::span<const double> values, int resamples, uint64_t seed) {
    Pcg64 rng(seed);
    size_t n = values.size();
    std::vector<double> row(n);
    std::vector<double> means;
    means.reserve(static_cast<size_t>(resamples));
    for (int r = 0; r < resamples; r++) {
        for (size_t j = 0; j < n; j++) {
            row[j] = values[rng.bounded(n)];
        }
        means.push_back(pairwise_sum(row.data(), n) / static_cast<double>(n));
    }
    return means;
}

Interval bootstrap_ci95(std::span<const double> values) {
    std::vector<double> means = bootstrap_means(values, 1000, 42);
    std::sort(means.begin(), means.end());
    return {percentile_linear(means, 2.5), percentile_linear(means, 97.5)};
}

}  // namespace relyloop::analytics
