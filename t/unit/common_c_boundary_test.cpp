// guard_callback (common/c_callback.hpp) and the Fd owner (common/raii.hpp):
// an exception in a C callback becomes the library's error code with its
// text kept; a descriptor is closed exactly once.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <stdexcept>
#include <string>

#include "common/c_callback.hpp"
#include "common/raii.hpp"

namespace {

using relyloop::CallbackFault;
using relyloop::Fd;
using relyloop::guard_callback;

TEST(GuardCallback, PassesTheResultThrough) {
    CallbackFault fault;
    EXPECT_EQ(guard_callback(&fault, -1, [] { return 7; }), 7);
    EXPECT_FALSE(fault.set());
}

TEST(GuardCallback, AnExceptionBecomesTheErrorCodeAndKeepsItsText) {
    CallbackFault fault;
    int rc = guard_callback(&fault, -1, []() -> int { throw std::runtime_error("disk on fire"); });
    EXPECT_EQ(rc, -1);
    ASSERT_TRUE(fault.set());
    EXPECT_STREQ(fault.what(), "disk on fire");
}

TEST(GuardCallback, KeepsTheFirstFaultOnly) {
    CallbackFault fault;
    (void)guard_callback(&fault, 0, []() -> int { throw std::bad_alloc(); });
    (void)guard_callback(&fault, 0, []() -> int { throw std::runtime_error("later"); });
    EXPECT_STREQ(fault.what(), std::bad_alloc().what());
}

TEST(GuardCallback, ANonStandardExceptionIsCaughtToo) {
    CallbackFault fault;
    EXPECT_EQ(guard_callback(&fault, 5, []() -> int { throw 42; }), 5);
    EXPECT_STREQ(fault.what(), "unknown exception");
    EXPECT_EQ(guard_callback(nullptr, 3, []() -> int { throw 42; }), 3);
}

TEST(GuardCallback, ALongMessageIsCutNotOverrun) {
    CallbackFault fault;
    std::string huge(4096, 'x');
    (void)guard_callback(&fault, 0, [&]() -> int { throw std::runtime_error(huge); });
    std::string kept = fault.what();
    EXPECT_LT(kept.size(), huge.size());
    EXPECT_EQ(kept, huge.substr(0, kept.size()));
}

bool is_open(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

TEST(Fd, ClosesOnScopeExitAndAfterRelease) {
    int raw = -1;
    {
        Fd fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
        ASSERT_TRUE(fd);
        raw = fd.get();
        EXPECT_TRUE(is_open(raw));
    }
    EXPECT_FALSE(is_open(raw));

    Fd kept(open("/dev/null", O_RDONLY | O_CLOEXEC));
    int released = kept.release();
    EXPECT_FALSE(kept);
    EXPECT_TRUE(is_open(released));
    Fd moved(released);
    Fd target;
    target = std::move(moved);
    EXPECT_FALSE(moved);
    EXPECT_EQ(target.get(), released);
    EXPECT_EQ(target.close(), 0);
    EXPECT_FALSE(is_open(released));
    EXPECT_EQ(target.close(), 0);  // a second close is a no-op
}

}  // namespace
