#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>

#include "periodic_thread.hpp"

using namespace relyloop::worker;
using namespace std::chrono_literals;

// A stop request ends a sleep that would last a day: the loop sees the stop
// and ends after the round it was in (order of events, not time).
TEST(PeriodicThread, StopWakesTheSleepingLoop) {
    PeriodicThread t;
    std::atomic<int> rounds{0};
    std::promise<void> first;
    t.start([&] {
        while (!t.stopping()) {
            if (rounds.fetch_add(1) == 0) first.set_value();
            t.sleep_for(24h);
        }
    });
    first.get_future().wait();
    t.request_stop();
    t.join();
    EXPECT_EQ(rounds.load(), 1);
    EXPECT_TRUE(t.stopping());
}

// A stop requested before the loop sleeps is not lost.
TEST(PeriodicThread, StopBeforeTheSleepIsKept) {
    PeriodicThread t;
    t.request_stop();
    bool slept = false;
    t.start([&] {
        t.sleep_until(std::chrono::system_clock::now() + 24h);
        slept = true;
    });
    t.join();
    EXPECT_TRUE(slept);
}

// stop_flag() is the flag a GitHub client or a cancellation check polls.
TEST(PeriodicThread, StopFlagFollowsTheRequest) {
    PeriodicThread t;
    const std::atomic<bool> *flag = t.stop_flag();
    EXPECT_FALSE(flag->load());
    t.request_stop();
    EXPECT_TRUE(flag->load());
    t.join();  // never started: nothing to join
}

// Destroying a running PeriodicThread stops and joins it.
TEST(PeriodicThread, DestructorStopsAndJoins) {
    std::atomic<bool> ended{false};
    {
        PeriodicThread t;
        std::promise<void> running;
        t.start([&] {
            running.set_value();
            while (!t.stopping()) t.sleep_for(24h);
            ended = true;
        });
        running.get_future().wait();
    }
    EXPECT_TRUE(ended.load());
}
