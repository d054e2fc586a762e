#pragma once

// The thread of a background loop that sleeps between rounds (the PR state
// reconciler, the webhook registration runner; docs/worker.md): start, a stop
// request that wakes a sleeping loop at once, join, and the interruptible
// sleeps. The owner's loop runs `while (!stopping())` and passes stop_flag()
// to what must notice a stop (GitHub clients, cancellation checks).
//
// The owner calls request_stop() and join() in its own destructor, before its
// members go: the loop runs the owner's code. Destroying a PeriodicThread
// also stops and joins it, as a last resort.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace relyloop::worker {

class PeriodicThread {
  public:
    PeriodicThread() = default;
    ~PeriodicThread() {
        request_stop();
        join();
    }
    PeriodicThread(const PeriodicThread &) = delete;
    PeriodicThread &operator=(const PeriodicThread &) = delete;

    // Runs `loop` on a new thread (once).
    void start(std::function<void()> loop) { thread_ = std::thread(std::move(loop)); }

    void request_stop() noexcept {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
    }

    void join() noexcept {
        if (thread_.joinable()) thread_.join();
    }

    [[nodiscard]] bool stopping() const noexcept { return stop_.load(); }
    [[nodiscard]] const std::atomic<bool> *stop_flag() const noexcept { return &stop_; }

    // Sleep until `t` or a stop request, whichever comes first.
    template <class Clock, class Duration>
    void sleep_until(std::chrono::time_point<Clock, Duration> t) {
        std::unique_lock lk(mu_);
        cv_.wait_until(lk, t, [this] { return stop_.load(); });
    }

    // Sleep for `d` or until a stop request, whichever comes first.
    template <class Rep, class Period>
    void sleep_for(std::chrono::duration<Rep, Period> d) {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, d, [this] { return stop_.load(); });
    }

  private:
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::thread thread_;
};

}  // namespace relyloop::worker
