#pragma once

// libgit2 for the PR pipeline (docs/worker.md, "Pipeline steps" 4, 5, 8, 9). No git subprocess
// anywhere: the PAT lives in memory only and reaches libgit2 through a
// credential callback as HTTP Basic `x-access-token:<PAT>` (a callback that
// gives up after one refused try; libgit2 wipes the credential when it frees
// it). Custom headers would also work, but libgit2 1.5.1 leaks its copy of them
// — with the credential inside — when a fetch fails to connect. The PAT is
// never in a URL, .git/config, argv, the environment, a log line or an error
// string (libgit2's messages pass through redact(text, PAT)). Redirects are
// not followed, so the credentials never travel to another host.
//
// A persistent clone per config repo lives at <clone_root>/<config_repo_id>.
// It is created once (cloned into a temporary sibling, then renamed, so a
// half-finished clone is never taken for a good one) and reused; a clone that
// does not open, whose origin URL differs, or whose local state turns out
// corrupt is wiped and cloned again. Deletions only ever happen inside
// clone_root. Each run fetches (with prune), checks out origin/<base> by force
// with untracked and ignored files removed, and leaves HEAD detached there.
// Commits are built in an in-memory index on top of that commit, so the
// working tree and .git/index are never edited.
//
// Not thread-safe per Workspace; different repos may be used from different
// threads at once (the per-repo advisory lock keeps one job per clone).

#include <git2.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/raii_git.hpp"
#include "common/secret.hpp"

namespace relyloop::git {

// git_libgit2_init / git_libgit2_shutdown (reference counted by libgit2).
class Libgit2Runtime {
  public:
    Libgit2Runtime();
    ~Libgit2Runtime();
    Libgit2Runtime(const Libgit2Runtime &) = delete;
    Libgit2Runtime &operator=(const Libgit2Runtime &) = delete;
};

// Process-wide settings, once, before any Workspace: the CA file (--ca-file,
// "" = the system bundle) and no global/XDG/system git configuration, so that
// nothing in ~/.gitconfig (insteadOf, proxies, ...) changes what the worker
// does. Throws std::runtime_error.
void configure_libgit2(const std::string &ca_file);

struct Identity {
    std::string name;
    std::string email;
};

struct RepoSpec {
    std::string clone_root;   // absolute
    std::string repo_id;      // directory name: [A-Za-z0-9_-]{1,64}
    std::string url;          // plain http(s) URL, no credentials
    std::string base_branch;  // pr_base_branch
    std::string branch;       // the job's branch, "" = none: fetched with the base
};

struct RemoteBranch {
    bool exists = false;
    bool ours = false;      // its tip carries "Relyloop-Proposal: <this id>"
    bool has_path = false;  // its tip tree contains the probed path
};

class Workspace {
  public:
    // Open or clone, then fetch + force checkout of origin/<base> + clean.
    // Throws Error(kCloneFailed), worker::Cancelled.
    Workspace(RepoSpec spec, const Secret &pat, const std::atomic<bool> *cancel);
    ~Workspace();
    Workspace(const Workspace &) = delete;
    Workspace &operator=(const Workspace &) = delete;

    [[nodiscard]] const std::string &workdir() const noexcept { return workdir_; }
    [[nodiscard]] bool cloned() const noexcept { return cloned_; }  // this run cloned afresh
    // Why an existing clone was thrown away and cloned again ("" = it was not).
    [[nodiscard]] const std::string &reclone_reason() const noexcept { return reclone_reason_; }

    // spec.branch on the remote, as of the fetch this run made.
    [[nodiscard]] RemoteBranch remote_branch(std::string_view proposal_id,
                                             std::string_view probe_path);

    // The blob at `path` in the base commit: nullopt if absent; throws
    // Error(kParamsFileNotFound) if it is not a regular file (tree, symlink,
    // submodule) or larger than max_bytes.
    [[nodiscard]] std::optional<std::string> read_base_file(std::string_view path,
                                                            size_t max_bytes);

    // A commit on top of the current tip (the base, then each commit made
    // here) that sets `path` to `content` (keeping the file's mode when it
    // exists). Author = committer = who.
    void commit_file(std::string_view path, std::string_view content, std::string_view message,
                     const Identity &who);

    // Creates (or moves) the local refs/heads/<spec.branch> to the tip and
    // returns the tip's hex id. Error(kPushFailed) when it cannot. The
    // destructor removes the branch again unless keep_branch() was called
    // (a dry run leaves its commit there to be looked at).
    std::string create_branch();
    void keep_branch() noexcept { keep_branch_ = true; }

    // create_branch(), then pushes the branch without force. A rejected ref
    // or a failed push → Error(kPushFailed). Cancelled.
    void push();

  private:
    void prepare();
    void open_or_clone();
    void clone_fresh();
    void sync();
    void wipe(const std::string &name);

    RepoSpec spec_;
    const Secret &pat_;
    const std::atomic<bool> *cancel_;
    std::string root_;     // realpath(clone_root)
    std::string workdir_;  // root_/repo_id
    bool cloned_ = false;
    bool cloning_ = false;
    bool keep_branch_ = false;
    std::string reclone_reason_;
    GitRepository repo_;
    git_oid base_{};
    git_oid tip_{};
};

}  // namespace relyloop::git
