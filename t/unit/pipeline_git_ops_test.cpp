// libgit2 workspace behaviour against local bare repositories (the git CLI
// builds the fixtures; the product itself never runs git).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/error.hpp"
#include "common/secret.hpp"
#include "pipeline/cancel.hpp"
#include "pipeline/git_ops.hpp"

using namespace relyloop;
using namespace relyloop::git;
namespace fs = std::filesystem;

namespace {

const char kPat[] = "ghp_gitopsUNITtoken0123456789abcdefghijklmn";

std::string run(const std::string &cmd) {
    std::string full = cmd + " 2>&1";
    FILE *p = popen(full.c_str(), "r");
    if (p == nullptr) return "";
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int rc = pclose(p);
    EXPECT_EQ(rc, 0) << cmd << "\n" << out;
    return out;
}

std::string slurp(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string &path, const std::string &text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
}

const std::string kGit =
    "git -c user.name=Seeder -c user.email=seed@example.com -c init.defaultBranch=main";

class GitOpsTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        runtime_ = new Libgit2Runtime();
        configure_libgit2("");
    }
    static void TearDownTestSuite() { delete runtime_; }

    void SetUp() override {
        char tmpl[] = "/tmp/rl-gitops-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        base_ = tmpl;
        bare_ = base_ + "/origin.git";
        seed_ = base_ + "/seed";
        root_ = base_ + "/clones";
        run(kGit + " init -q --bare " + bare_);
        run(kGit + " init -q " + seed_);
        spit(seed_ + "/clusters/prod/bm25.params.json", "{\n  \"size\": 10\n}\n");
        spit(seed_ + "/README.md", "config\n");
        spit(seed_ + "/.gitignore", "*.tmp\n");
        run("ln -s bm25.params.json " + seed_ + "/clusters/prod/link.params.json");
        commit_and_push("initial");
    }
    void TearDown() override { fs::remove_all(base_); }

    void commit_and_push(const std::string &msg, const std::string &branch = "main") {
        run("cd " + seed_ + " && " + kGit + " add -A && " + kGit + " commit -q -m '" + msg +
            "' && " + kGit + " push -q " + bare_ + " HEAD:refs/heads/" + branch);
    }

    RepoSpec spec(const std::string &base_branch = "main", const std::string &branch = "") const {
        return RepoSpec{root_, "repo-1", bare_, base_branch, branch};
    }

    static Libgit2Runtime *runtime_;
    std::string base_, bare_, seed_, root_;
    Secret pat_{std::string(kPat)};
    std::atomic<bool> cancel_{false};
    Identity bot_{"relyloop-bot", "bot@example.com"};
};

Libgit2Runtime *GitOpsTest::runtime_ = nullptr;

}  // namespace

TEST_F(GitOpsTest, ClonesOnceThenReuses) {
    {
        Workspace ws(spec(), pat_, &cancel_);
        EXPECT_TRUE(ws.cloned());
        EXPECT_EQ(ws.workdir(), fs::canonical(root_).string() + "/repo-1");
        EXPECT_EQ(slurp(ws.workdir() + "/README.md"), "config\n");
    }
    {
        Workspace ws(spec(), pat_, &cancel_);
        EXPECT_FALSE(ws.cloned());
        EXPECT_TRUE(ws.reclone_reason().empty());
    }
    // Nothing but the clone under the root; the URL in .git/config is plain.
    int entries = 0;
    for (auto &e : fs::directory_iterator(root_)) {
        (void)e;
        entries++;
    }
    EXPECT_EQ(entries, 1);
    std::string config = slurp(root_ + "/repo-1/.git/config");
    EXPECT_NE(config.find("url = " + bare_), std::string::npos) << config;
    EXPECT_EQ(config.find("ghp_"), std::string::npos);
    EXPECT_EQ(config.find("x-access-token"), std::string::npos);
}

TEST_F(GitOpsTest, ResetRemovesLocalEditsUntrackedAndIgnoredFiles) {
    { Workspace ws(spec(), pat_, &cancel_); }
    std::string wd = root_ + "/repo-1";
    spit(wd + "/README.md", "edited\n");
    spit(wd + "/untracked.json", "{}");
    spit(wd + "/junk.tmp", "ignored");
    spit(wd + "/newdir/x.txt", "x");
    fs::remove(wd + "/clusters/prod/bm25.params.json");
    {
        Workspace ws(spec(), pat_, &cancel_);
        EXPECT_FALSE(ws.cloned());
        EXPECT_EQ(slurp(wd + "/README.md"), "config\n");
        EXPECT_FALSE(fs::exists(wd + "/untracked.json"));
        EXPECT_FALSE(fs::exists(wd + "/junk.tmp"));
        EXPECT_FALSE(fs::exists(wd + "/newdir"));
        EXPECT_TRUE(fs::exists(wd + "/clusters/prod/bm25.params.json"));
    }
    EXPECT_EQ(run("git -C " + wd + " status --porcelain --ignored"), "");
}

TEST_F(GitOpsTest, FetchSeesNewBaseCommits) {
    { Workspace ws(spec(), pat_, &cancel_); }
    spit(seed_ + "/clusters/prod/bm25.params.json", "{\n  \"size\": 20\n}\n");
    commit_and_push("second");
    Workspace ws(spec(), pat_, &cancel_);
    EXPECT_FALSE(ws.cloned());
    EXPECT_EQ(ws.read_base_file("clusters/prod/bm25.params.json", 1 << 20).value(),
              "{\n  \"size\": 20\n}\n");
    EXPECT_EQ(slurp(ws.workdir() + "/clusters/prod/bm25.params.json"), "{\n  \"size\": 20\n}\n");
}

TEST_F(GitOpsTest, OriginUrlMismatchReclones) {
    { Workspace ws(spec(), pat_, &cancel_); }
    run("git -C " + root_ + "/repo-1 remote set-url origin /nonexistent/elsewhere.git");
    Workspace ws(spec(), pat_, &cancel_);
    EXPECT_TRUE(ws.cloned());
    EXPECT_NE(ws.reclone_reason().find("origin URL"), std::string::npos);
}

TEST_F(GitOpsTest, CorruptCloneReclones) {
    { Workspace ws(spec(), pat_, &cancel_); }
    fs::remove_all(root_ + "/repo-1/.git/objects");
    fs::remove(root_ + "/repo-1/.git/HEAD");
    Workspace ws(spec(), pat_, &cancel_);
    EXPECT_TRUE(ws.cloned());
    EXPECT_FALSE(ws.reclone_reason().empty());
    EXPECT_EQ(slurp(ws.workdir() + "/README.md"), "config\n");
}

TEST_F(GitOpsTest, StaleIndexLockReclones) {
    { Workspace ws(spec(), pat_, &cancel_); }
    spit(root_ + "/repo-1/.git/index.lock", "");
    Workspace ws(spec(), pat_, &cancel_);
    EXPECT_TRUE(ws.cloned());
    EXPECT_NE(ws.reclone_reason().find("checkout"), std::string::npos) << ws.reclone_reason();
}

TEST_F(GitOpsTest, SymlinkAtClonePathIsRemovedNotFollowed) {
    fs::create_directories(root_);
    fs::create_directories(base_ + "/precious");
    spit(base_ + "/precious/keep.txt", "keep");
    ASSERT_EQ(symlink((base_ + "/precious").c_str(), (root_ + "/repo-1").c_str()), 0);
    Workspace ws(spec(), pat_, &cancel_);
    EXPECT_TRUE(ws.cloned());
    EXPECT_EQ(slurp(base_ + "/precious/keep.txt"), "keep");
    EXPECT_FALSE(fs::is_symlink(root_ + "/repo-1"));
}

TEST_F(GitOpsTest, StaleTemporaryClonesAreCleaned) {
    const std::string dead = root_ + "/.tmp-repo-1-0196c0de-0000-7000-8000-000000000001";
    // Another repo whose id starts with "repo-1-": its temporary clone stays.
    const std::string other = root_ + "/.tmp-repo-1-x-0196c0de-0000-7000-8000-000000000002";
    fs::create_directories(dead + "/x");
    fs::create_directories(other);
    fs::create_directories(root_ + "/.tmp-repo-2-0196c0de-0000-7000-8000-000000000003");
    Workspace ws(spec(), pat_, &cancel_);
    EXPECT_FALSE(fs::exists(dead));
    EXPECT_TRUE(fs::exists(other));
    EXPECT_TRUE(fs::exists(root_ + "/.tmp-repo-2-0196c0de-0000-7000-8000-000000000003"));
}

TEST_F(GitOpsTest, MissingBaseBranchOrRepoIsCloneFailed) {
    try {
        Workspace ws(spec("release"), pat_, &cancel_);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kCloneFailed);
    }
    EXPECT_FALSE(fs::exists(root_ + "/repo-1"));
    { Workspace ws(spec(), pat_, &cancel_); }
    try {
        Workspace ws(spec("release"), pat_, &cancel_);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kCloneFailed);
        EXPECT_NE(std::string(e.what()).find("'release' does not exist"), std::string::npos);
    }
    RepoSpec s = spec();
    s.url = base_ + "/missing.git";
    s.repo_id = "repo-2";
    try {
        Workspace ws(s, pat_, &cancel_);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kCloneFailed);
    }
}

TEST_F(GitOpsTest, UnsafeRepoIdRejected) {
    RepoSpec s = spec();
    s.repo_id = "../escape";
    EXPECT_THROW(Workspace(s, pat_, &cancel_), Error);
    EXPECT_FALSE(fs::exists(base_ + "/escape"));
}

TEST_F(GitOpsTest, ReadBaseFileKinds) {
    Workspace ws(spec(), pat_, &cancel_);
    EXPECT_FALSE(ws.read_base_file("nope.json", 100).has_value());
    try {
        (void)ws.read_base_file("clusters/prod/link.params.json", 100);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kConfigPathInvalid);
    }
    try {
        (void)ws.read_base_file("clusters/prod", 100);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kParamsFileNotFound);
    }
    EXPECT_THROW((void)ws.read_base_file("clusters/prod/bm25.params.json", 3), Error);
}

TEST_F(GitOpsTest, CommitsAndPushesANewBranch) {
    std::string base_sha = run("git -C " + bare_ + " rev-parse main");
    {
        Workspace ws(spec("main", "relyloop/study-s-1"), pat_, &cancel_);
        EXPECT_FALSE(ws.remote_branch("p-1", "").exists);
        ws.commit_file("clusters/prod/bm25.params.json", "{\n  \"size\": 11\n}\n",
                       "relevance: tune\n\nRelyloop-Proposal: p-1\n", bot_);
        ws.commit_file(".relyloop/digest-charts/s-1.png", std::string("\x89PNG\0x", 6),
                       "chart\n\nRelyloop-Proposal: p-1\n", bot_);
        ws.push();
        // The working tree is untouched by commits.
        EXPECT_EQ(slurp(ws.workdir() + "/clusters/prod/bm25.params.json"),
                  "{\n  \"size\": 10\n}\n");
    }
    EXPECT_EQ(run("git -C " + bare_ + " rev-list --count main..relyloop/study-s-1"), "2\n");
    EXPECT_EQ(run("git -C " + bare_ + " merge-base main relyloop/study-s-1"), base_sha);
    EXPECT_EQ(run("git -C " + bare_ + " log -1 --format=%an/%ae/%cn/%ce relyloop/study-s-1~1"),
              "relyloop-bot/bot@example.com/relyloop-bot/bot@example.com\n");
    EXPECT_EQ(run("git -C " + bare_ + " diff --stat main relyloop/study-s-1~1"),
              " clusters/prod/bm25.params.json | 2 +-\n 1 file changed, 1 insertion(+), 1 "
              "deletion(-)\n");
    EXPECT_EQ(run("git -C " + bare_ + " show relyloop/study-s-1:clusters/prod/bm25.params.json"),
              "{\n  \"size\": 11\n}\n");
    EXPECT_EQ(
        run("git -C " + bare_ + " cat-file -s relyloop/study-s-1:.relyloop/digest-charts/s-1.png"),
        "6\n");
    // The job's refs are gone again: the cache keeps only the base.
    EXPECT_EQ(run("git -C " + root_ + "/repo-1 for-each-ref --format='%(refname)'"),
              "refs/remotes/origin/main\n");

    {
        Workspace again(spec("main", "relyloop/study-s-1"), pat_, &cancel_);
        RemoteBranch rb = again.remote_branch("p-1", ".relyloop/digest-charts/s-1.png");
        EXPECT_TRUE(rb.exists);
        EXPECT_TRUE(rb.ours);
        EXPECT_TRUE(rb.has_path);
        rb = again.remote_branch("p-2", "missing.png");
        EXPECT_TRUE(rb.exists);
        EXPECT_FALSE(rb.ours);
        EXPECT_FALSE(rb.has_path);
    }
    // Deleted on the remote: not "exists" from a stale tracking ref.
    run("git -C " + bare_ + " branch -D relyloop/study-s-1");
    Workspace third(spec("main", "relyloop/study-s-1"), pat_, &cancel_);
    EXPECT_FALSE(third.remote_branch("p-1", "").exists);
}

TEST_F(GitOpsTest, FetchesOnlyTheBaseAndTheJobBranch) {
    spit(seed_ + "/other.txt", "x");
    commit_and_push("unrelated", "feature/unrelated");
    Workspace ws(spec("main", "relyloop/none"), pat_, &cancel_);
    std::string refs = run("git -C " + ws.workdir() + " for-each-ref --format='%(refname)'");
    EXPECT_EQ(refs.find("unrelated"), std::string::npos) << refs;
    EXPECT_NE(refs.find("refs/remotes/origin/main"), std::string::npos);
}

TEST_F(GitOpsTest, KeepsExecutableModeOfEditedFile) {
    run("chmod +x " + seed_ + "/README.md");
    commit_and_push("exec");
    {
        Workspace ws(spec("main", "relyloop/mode"), pat_, &cancel_);
        ws.commit_file("README.md", "changed\n", "m\n", bot_);
        ws.push();
    }
    EXPECT_EQ(run("git -C " + bare_ + " ls-tree relyloop/mode README.md").substr(0, 6), "100755");
}

TEST_F(GitOpsTest, PushNeverForces) {
    Workspace ws(spec("main", "relyloop/study-x"), pat_, &cancel_);
    // Someone else creates the branch after our fetch.
    spit(seed_ + "/other.txt", "theirs");
    commit_and_push("theirs", "relyloop/study-x");
    ws.commit_file("README.md", "ours\n", "m\n", bot_);
    try {
        ws.push();
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kPushFailed);
    }
    EXPECT_EQ(run("git -C " + bare_ + " log -1 --format=%s relyloop/study-x"), "theirs\n");
}

TEST_F(GitOpsTest, CancelStopsTheClone) {
    cancel_ = true;
    EXPECT_THROW(Workspace(spec(), pat_, &cancel_), worker::Cancelled);
    EXPECT_FALSE(fs::exists(root_ + "/repo-1"));
    int entries = 0;
    for (auto &e : fs::directory_iterator(root_)) {
        (void)e;
        entries++;
    }
    EXPECT_EQ(entries, 0);
}

namespace {

// A TCP listener that accepts connections and never says a word.
class SilentServer {
  public:
    SilentServer() {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
        EXPECT_EQ(listen(fd_, 8), 0);
        socklen_t len = sizeof a;
        getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
        port_ = ntohs(a.sin_port);
    }
    ~SilentServer() {
        if (client_ >= 0) close(client_);
        close(fd_);
    }
    [[nodiscard]] int port() const { return port_; }

    // Waits (up to timeout_ms) for a client to connect and keeps its
    // connection open without a word; false if none came.
    bool await_client(int timeout_ms) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) != 1) return false;
        client_ = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        return client_ >= 0;
    }

  private:
    int fd_ = -1;
    int client_ = -1;
    int port_ = 0;
};

}  // namespace

TEST_F(GitOpsTest, SilentServerIsAbandonedOnCancel) {
    SilentServer silent;
    RepoSpec s = spec();
    s.url = "http://127.0.0.1:" + std::to_string(silent.port()) + "/acme/repo.git";
    // The order of events, not a clock: the clone connects to a server that
    // never answers, then it is cancelled, and it gives up (a clone stuck in
    // its read would hang here until ctest's timeout).
    std::atomic<bool> connected{false};
    std::thread canceller([this, &silent, &connected] {
        connected = silent.await_client(30000);
        cancel_ = true;
    });
    EXPECT_THROW(Workspace(s, pat_, &cancel_), worker::Cancelled);
    canceller.join();
    EXPECT_TRUE(connected.load()) << "the clone never connected to the silent server";
    EXPECT_FALSE(fs::exists(root_ + "/repo-1"));
}

TEST_F(GitOpsTest, RefusedConnectionIsCloneFailed) {
    int port = 0;
    {
        SilentServer closed;  // bound, then closed again: nobody listens there
        port = closed.port();
    }
    RepoSpec s = spec();
    s.url = "http://127.0.0.1:" + std::to_string(port) + "/acme/repo.git";
    try {
        Workspace ws(s, pat_, &cancel_);
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kCloneFailed);
        EXPECT_NE(std::string(e.what()).find("failed to connect"), std::string::npos) << e.what();
    }
}
