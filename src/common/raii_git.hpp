#pragma once

// libgit2 handles (raii.hpp, docs/decisions.md "The core").

#include <git2.h>

#include "common/raii.hpp"

namespace relyloop {

using GitRepository = std::unique_ptr<git_repository, c_free<git_repository_free>>;
using GitConfig = std::unique_ptr<git_config, c_free<git_config_free>>;
using GitRemote = std::unique_ptr<git_remote, c_free<git_remote_free>>;
using GitReference = std::unique_ptr<git_reference, c_free<git_reference_free>>;
using GitCommit = std::unique_ptr<git_commit, c_free<git_commit_free>>;
using GitTree = std::unique_ptr<git_tree, c_free<git_tree_free>>;
using GitTreeEntry = std::unique_ptr<git_tree_entry, c_free<git_tree_entry_free>>;
using GitBlob = std::unique_ptr<git_blob, c_free<git_blob_free>>;
using GitIndex = std::unique_ptr<git_index, c_free<git_index_free>>;
using GitSignature = std::unique_ptr<git_signature, c_free<git_signature_free>>;

// A git_buf lives on the stack; its contents are disposed of on every path.
class GitBuf {
  public:
    GitBuf() noexcept = default;
    GitBuf(const GitBuf &) = delete;
    GitBuf &operator=(const GitBuf &) = delete;
    ~GitBuf() { git_buf_dispose(&buf_); }

    [[nodiscard]] git_buf *get() noexcept { return &buf_; }
    [[nodiscard]] const git_buf *operator->() const noexcept { return &buf_; }

  private:
    git_buf buf_ = GIT_BUF_INIT;
};

}  // namespace relyloop
