#include "pipeline/git_ops.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/c_callback.hpp"
#include "common/error.hpp"
#include "common/raii.hpp"
#include "common/raii_git.hpp"
#include "common/redact.hpp"
#include "common/uuid.hpp"
#include "pipeline/cancel.hpp"
#include "pipeline/git_stream.hpp"
#include "pipeline/pr_text.hpp"

namespace relyloop::git {

namespace {

// A failure in the local clone (objects, index, refs, locks) rather than in
// talking to the remote: the cure is a fresh clone.
class LocalProblem : public Error {
  public:
    explicit LocalProblem(const std::string &message) : Error(ErrorCode::kCloneFailed, message) {}
};

// libgit2's last error text, NULL-safe, with the PAT (and anything that looks
// like a token or a URL password) removed.
std::string git_message(const Secret &pat) {
    const git_error *e = git_error_last();
    std::string msg =
        (e != nullptr && e->message != nullptr) ? e->message : "unknown libgit2 error";
    return redact(msg, pat.reveal());
}

int git_klass() {
    const git_error *e = git_error_last();
    return e != nullptr ? e->klass : GIT_ERROR_NONE;
}

bool remote_problem(int rc, int klass) {
    return rc == GIT_EAUTH || rc == GIT_ECERTIFICATE || klass == GIT_ERROR_NET ||
           klass == GIT_ERROR_HTTP || klass == GIT_ERROR_SSL || klass == GIT_ERROR_SSH;
}

std::string describe(int rc, const Secret &pat) {
    if (rc == GIT_EAUTH) {
        return "authentication failed: the server refused the repo's PAT (HTTP 401)";
    }
    return git_message(pat);
}

struct CallbackState {
    const std::atomic<bool> *cancel = nullptr;
    const Secret *pat = nullptr;
    bool cancelled = false;
    int credential_calls = 0;
    std::string rejected;  // "<ref>: <status>" of a ref the server refused
    CallbackFault fault;
};

// Nothing may cross libgit2: an exception in a callback ends the operation
// with libgit2's error set to its text, which the failed call then reports.
template <typename F>
int guarded(CallbackState *s, F &&f) noexcept {
    int rc = guard_callback(&s->fault, static_cast<int>(GIT_ERROR), std::forward<F>(f));
    if (rc == GIT_ERROR && s->fault.set()) {
        git_error_set_str(GIT_ERROR_CALLBACK, s->fault.what());
    }
    return rc;
}

// HTTP Basic x-access-token:<PAT>, handed over in memory only. libgit2 asks
// again after every 401 and would loop forever on a bad token: the second
// call means the first answer was refused, so give up.
int on_credentials(git_credential **out, const char *, const char *, unsigned int allowed,
                   void *payload) noexcept {
    auto *s = static_cast<CallbackState *>(payload);
    return guarded(s, [&] {
        if (++s->credential_calls > 1 || s->pat == nullptr || s->pat->empty()) {
            git_error_set_str(GIT_ERROR_NET, "the server refused the credentials");
            return static_cast<int>(GIT_EAUTH);
        }
        if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) == 0) {
            return static_cast<int>(GIT_PASSTHROUGH);
        }
        // libgit2 copies both strings and wipes the password when it frees them.
        return git_credential_userpass_plaintext_new(out, "x-access-token",
                                                     s->pat->reveal().c_str());
    });
}

int cancel_check(void *payload) noexcept {
    auto *s = static_cast<CallbackState *>(payload);
    if (s->cancel != nullptr && s->cancel->load(std::memory_order_relaxed)) {
        s->cancelled = true;
        return GIT_EUSER;
    }
    return 0;
}

int on_transfer(const git_indexer_progress *, void *payload) noexcept {
    return cancel_check(payload);
}
int on_sideband(const char *, int, void *payload) noexcept { return cancel_check(payload); }
int on_pack(int, uint32_t, uint32_t, void *payload) noexcept { return cancel_check(payload); }
int on_push_transfer(unsigned int, unsigned int, size_t, void *payload) noexcept {
    return cancel_check(payload);
}
int on_update_reference(const char *refname, const char *status, void *payload) noexcept {
    auto *s = static_cast<CallbackState *>(payload);
    return guarded(s, [&] {
        if (status != nullptr) {
            s->rejected = std::string(refname != nullptr ? refname : "?") + ": " + status;
        }
        return 0;
    });
}

void install_callbacks(git_remote_callbacks &cb, CallbackState *state) {
    cb.transfer_progress = on_transfer;
    cb.sideband_progress = on_sideband;
    cb.pack_progress = on_pack;
    cb.push_transfer_progress = on_push_transfer;
    cb.push_update_reference = on_update_reference;
    cb.credentials = on_credentials;
    cb.payload = state;
}

bool valid_repo_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    }
    return true;
}

constexpr char kFetchSpec[] = "+refs/heads/*:refs/remotes/origin/*";

// An in-memory remote for the clone's URL. Not git_remote_lookup("origin"):
// lookup and named creation apply url.*.insteadOf through a config regex, and
// Debian's libgit2 1.5.1 (system PCRE2) leaks the match data of every
// non-matching entry, some 20 KiB a time — a leak per job in a daemon.
GitRemote memory_remote(git_repository *repo, const std::string &url, const Secret &pat) {
    git_remote_create_options o;
    git_remote_create_options_init(&o, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    o.repository = repo;
    o.name = nullptr;
    o.fetchspec = kFetchSpec;
    o.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
    git_remote *remote = nullptr;
    if (git_remote_create_with_opts(&remote, url.c_str(), &o) < 0) {
        throw LocalProblem("cannot set up the remote: " + git_message(pat));
    }
    return GitRemote(remote);
}

// remote.origin.url of the clone, "" when unset.
std::string origin_url(git_repository *repo) {
    git_config *raw = nullptr;
    if (git_repository_config_snapshot(&raw, repo) < 0) return "";
    GitConfig cfg(raw);
    const char *url = nullptr;
    if (git_config_get_string(&url, cfg.get(), "remote.origin.url") < 0 || url == nullptr) {
        return "";
    }
    return url;
}

}  // namespace

Libgit2Runtime::Libgit2Runtime() { git_libgit2_init(); }
Libgit2Runtime::~Libgit2Runtime() { git_libgit2_shutdown(); }

void configure_libgit2(const std::string &ca_file) {
    for (int level : {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL,
                      GIT_CONFIG_LEVEL_PROGRAMDATA}) {
        if (git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "") < 0) {
            throw std::runtime_error("libgit2: cannot isolate the git configuration");
        }
    }
    register_timed_stream();
    if (!ca_file.empty() &&
        git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, ca_file.c_str(), nullptr) < 0) {
        const git_error *e = git_error_last();
        throw std::runtime_error("libgit2: cannot use the CA file " + ca_file + ": " +
                                 (e != nullptr && e->message != nullptr ? e->message : "?"));
    }
}

Workspace::Workspace(RepoSpec spec, const Secret &pat, const std::atomic<bool> *cancel)
    : spec_(std::move(spec)), pat_(pat), cancel_(cancel) {
    if (!valid_repo_id(spec_.repo_id)) {
        throw Error(ErrorCode::kInternalError, "config repo id is not usable as a directory name");
    }
    std::error_code ec;
    if (!std::filesystem::exists(spec_.clone_root, ec)) {
        std::filesystem::create_directories(spec_.clone_root, ec);
        if (!ec) {
            std::filesystem::permissions(spec_.clone_root, std::filesystem::perms::owner_all, ec);
        }
    }
    char real[PATH_MAX];
    if (realpath(spec_.clone_root.c_str(), real) == nullptr) {
        throw Error(ErrorCode::kCloneFailed,
                    "clone root " + spec_.clone_root + " is unusable: " + errno_text(errno));
    }
    root_ = real;
    workdir_ = root_ + "/" + spec_.repo_id;

    // Temporary clones left by a worker that died mid-clone (this repo's lock
    // is ours, so nobody else is writing them).
    if (Dir d{opendir(root_.c_str())}) {
        std::vector<std::string> stale;
        std::string prefix = ".tmp-" + spec_.repo_id + "-";
        while (dirent *e = readdir(d.get())) {
            // Exactly ".tmp-<this id>-<uuid>": never another repo's (whose id
            // might start with this one's followed by '-').
            std::string_view name(e->d_name);
            if (name.size() == prefix.size() + 36 && name.starts_with(prefix) &&
                is_uuid(name.substr(prefix.size()))) {
                stale.emplace_back(name);
            }
        }
        d.reset();
        for (const std::string &name : stale) wipe(name);
    }

    StreamCancelScope scope(cancel_);
    prepare();
}

void Workspace::prepare() {
    try {
        open_or_clone();
        if (!cloned_) {
            sync();
        }
    } catch (const LocalProblem &e) {
        if (cloning_) {
            throw Error(ErrorCode::kCloneFailed, e.what());
        }
        reclone_reason_ = e.what();
        repo_.reset();
        wipe(spec_.repo_id);
        try {
            clone_fresh();
        } catch (const LocalProblem &again) {
            throw Error(ErrorCode::kCloneFailed, again.what());
        }
    }
}

Workspace::~Workspace() {
    if (repo_ && !spec_.branch.empty()) {
        for (const std::string &ref :
             {"refs/heads/" + spec_.branch, "refs/remotes/origin/" + spec_.branch}) {
            if (keep_branch_ && ref.starts_with("refs/heads/")) continue;
            (void)git_reference_remove(repo_.get(), ref.c_str());
        }
    }
}

void Workspace::wipe(const std::string &name) {
    // Containment: a single path component directly below the resolved clone
    // root, never anything else.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
        throw Error(ErrorCode::kInternalError, "refusing to delete outside the clone root");
    }
    std::string path = root_ + "/" + name;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);  // does not follow symlinks
    if (ec) {
        throw Error(ErrorCode::kCloneFailed,
                    "cannot remove the cached clone " + path + ": " + ec.message());
    }
}

void Workspace::open_or_clone() {
    struct stat st {};
    if (lstat(workdir_.c_str(), &st) == 0) {
        std::string why;
        git_repository *raw = nullptr;
        if (!S_ISDIR(st.st_mode)) {
            why = "the clone path is not a directory";
        } else if (git_repository_open_ext(&raw, workdir_.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH,
                                           nullptr) < 0) {
            why = "the cached clone does not open: " + git_message(pat_);
        } else {
            repo_.reset(raw);
            if (git_repository_is_bare(repo_.get())) {
                why = "the cached clone is bare";
            } else if (origin_url(repo_.get()) != spec_.url) {
                why = "the cached clone's origin URL differs from the config repo's";
            }
        }
        if (why.empty()) {
            return;
        }
        repo_.reset();
        reclone_reason_ = why;
        wipe(spec_.repo_id);
    }
    clone_fresh();
}

void Workspace::clone_fresh() {
    if (cancel_ != nullptr && cancel_->load()) throw worker::Cancelled();
    cloning_ = true;
    // init + origin config + the regular sync (fetch, checkout) in a
    // temporary sibling, then rename: the same result as git_clone without
    // its leaking remote creation, and never a half-made clone in place.
    std::string tmp_name = ".tmp-" + spec_.repo_id + "-" + uuid_v7();
    std::string tmp = root_ + "/" + tmp_name;
    try {
        git_repository_init_options io;
        git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
        io.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
        io.mode = GIT_REPOSITORY_INIT_SHARED_UMASK;
        git_repository *raw_repo = nullptr;
        if (git_repository_init_ext(&raw_repo, tmp.c_str(), &io) < 0) {
            throw Error(ErrorCode::kCloneFailed, "cannot create the clone: " + git_message(pat_));
        }
        repo_.reset(raw_repo);
        git_config *raw = nullptr;
        if (git_repository_config(&raw, repo_.get()) < 0) {
            throw Error(ErrorCode::kCloneFailed,
                        "cannot configure the clone: " + git_message(pat_));
        }
        GitConfig cfg(raw);
        if (git_config_set_string(cfg.get(), "remote.origin.url", spec_.url.c_str()) < 0 ||
            git_config_set_string(cfg.get(), "remote.origin.fetch", kFetchSpec) < 0) {
            throw Error(ErrorCode::kCloneFailed,
                        "cannot configure the clone: " + git_message(pat_));
        }
        cfg.reset();
        sync();
        repo_.reset();
        if (rename(tmp.c_str(), workdir_.c_str()) != 0) {
            throw Error(ErrorCode::kCloneFailed,
                        std::string("cannot move the new clone into place: ") + errno_text(errno));
        }
    } catch (...) {
        repo_.reset();
        std::error_code ec;
        std::filesystem::remove_all(tmp, ec);
        throw;
    }
    git_repository *raw = nullptr;
    if (git_repository_open_ext(&raw, workdir_.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) <
        0) {
        throw Error(ErrorCode::kCloneFailed, "the new clone does not open: " + git_message(pat_));
    }
    repo_.reset(raw);
    cloned_ = true;
}

void Workspace::sync() {
    CallbackState state{cancel_, &pat_};

    if (cancel_ != nullptr && cancel_->load()) throw worker::Cancelled();
    GitRemote origin = memory_remote(repo_.get(), spec_.url, pat_);
    {
        std::vector<std::string> specs = {"+refs/heads/" + spec_.base_branch +
                                          ":refs/remotes/origin/" + spec_.base_branch};
        if (!spec_.branch.empty()) {
            std::string tracking = "refs/remotes/origin/" + spec_.branch;
            int rc = git_reference_remove(repo_.get(), tracking.c_str());
            if (rc < 0 && rc != GIT_ENOTFOUND) {
                throw LocalProblem("cannot reset " + tracking + ": " + git_message(pat_));
            }
            specs.push_back("+refs/heads/" + spec_.branch + ":" + tracking);
        }
        std::vector<char *> spec_ptrs;
        for (std::string &sp : specs) spec_ptrs.push_back(sp.data());
        git_strarray refspecs = {spec_ptrs.data(), spec_ptrs.size()};

        git_fetch_options fo;
        git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
        install_callbacks(fo.callbacks, &state);
        // Explicit refspecs: a source the remote lacks is skipped, not an error.
        fo.prune = GIT_FETCH_NO_PRUNE;
        fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
        fo.follow_redirects = GIT_REMOTE_REDIRECT_NONE;
        fo.update_fetchhead = 0;
        int rc = git_remote_fetch(origin.get(), &refspecs, &fo, "relyloop: fetch");
        if (rc < 0) {
            if (state.cancelled || (cancel_ != nullptr && cancel_->load())) {
                throw worker::Cancelled();
            }
            int klass = git_klass();
            std::string msg = describe(rc, pat_);
            if (remote_problem(rc, klass)) {
                throw Error(ErrorCode::kCloneFailed, "fetch failed: " + msg);
            }
            throw LocalProblem("fetch failed: " + msg);
        }
    }
    origin.reset();

    std::string ref = "refs/remotes/origin/" + spec_.base_branch;
    git_oid oid;
    int rc = git_reference_name_to_id(&oid, repo_.get(), ref.c_str());
    if (rc == GIT_ENOTFOUND) {
        throw Error(ErrorCode::kCloneFailed,
                    "base branch '" + spec_.base_branch + "' does not exist on the remote");
    }
    if (rc < 0) {
        throw LocalProblem("cannot read " + ref + ": " + git_message(pat_));
    }
    git_commit *raw_commit = nullptr;
    if (git_commit_lookup(&raw_commit, repo_.get(), &oid) < 0) {
        throw LocalProblem("cannot read the base commit: " + git_message(pat_));
    }
    GitCommit commit(raw_commit);

    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    co.checkout_strategy =
        GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
    // The working tree only serves the path checks of the params file (which
    // is read from the tree, byte for byte): raw blobs are what we want, and
    // without filters libgit2 skips a .gitattributes lookup — two realpath()
    // calls — per file written, which tripled the time of a first checkout.
    co.disable_filters = 1;
    if (git_checkout_tree(repo_.get(), reinterpret_cast<const git_object *>(commit.get()), &co) <
        0) {
        throw LocalProblem("checkout of " + spec_.base_branch + " failed: " + git_message(pat_));
    }
    if (git_repository_set_head_detached(repo_.get(), &oid) < 0) {
        throw LocalProblem("cannot move HEAD: " + git_message(pat_));
    }
    git_oid_cpy(&base_, &oid);
    git_oid_cpy(&tip_, &oid);
}

RemoteBranch Workspace::remote_branch(std::string_view proposal_id, std::string_view probe_path) {
    RemoteBranch out;
    if (spec_.branch.empty()) {
        return out;
    }
    std::string ref = "refs/remotes/origin/" + spec_.branch;
    git_oid oid;
    int rc = git_reference_name_to_id(&oid, repo_.get(), ref.c_str());
    if (rc == GIT_ENOTFOUND) {
        return out;
    }
    if (rc < 0) {
        throw Error(ErrorCode::kCloneFailed, "cannot read " + ref + ": " + git_message(pat_));
    }
    out.exists = true;
    git_commit *raw = nullptr;
    if (git_commit_lookup(&raw, repo_.get(), &oid) < 0) {
        return out;  // not a commit: certainly not ours
    }
    GitCommit commit(raw);
    const char *message = git_commit_message(commit.get());
    out.ours = message != nullptr && worker::has_proposal_trailer(message, proposal_id);
    git_tree *raw_tree = nullptr;
    if (!probe_path.empty() && git_commit_tree(&raw_tree, commit.get()) == 0) {
        GitTree tree(raw_tree);
        std::string probe(probe_path);
        git_tree_entry *entry = nullptr;
        if (git_tree_entry_bypath(&entry, tree.get(), probe.c_str()) == 0) {
            GitTreeEntry owned(entry);
            out.has_path = true;
        }
    }
    return out;
}

std::optional<std::string> Workspace::read_base_file(std::string_view path, size_t max_bytes) {
    git_commit *raw = nullptr;
    if (git_commit_lookup(&raw, repo_.get(), &base_) < 0) {
        throw Error(ErrorCode::kCloneFailed, "cannot read the base commit: " + git_message(pat_));
    }
    GitCommit commit(raw);
    git_tree *raw_tree = nullptr;
    if (git_commit_tree(&raw_tree, commit.get()) < 0) {
        throw Error(ErrorCode::kCloneFailed, "cannot read the base tree: " + git_message(pat_));
    }
    GitTree tree(raw_tree);
    git_tree_entry *raw_entry = nullptr;
    if (git_tree_entry_bypath(&raw_entry, tree.get(), std::string(path).c_str()) < 0) {
        return std::nullopt;
    }
    GitTreeEntry entry(raw_entry);
    git_filemode_t mode = git_tree_entry_filemode(entry.get());
    if (mode == GIT_FILEMODE_LINK) {
        throw Error(ErrorCode::kConfigPathInvalid,
                    std::string(path) + " is a symlink; the params file must be a regular file");
    }
    if (mode != GIT_FILEMODE_BLOB && mode != GIT_FILEMODE_BLOB_EXECUTABLE) {
        throw Error(ErrorCode::kParamsFileNotFound, std::string(path) + " is not a regular file");
    }
    git_blob *raw_blob = nullptr;
    if (git_blob_lookup(&raw_blob, repo_.get(), git_tree_entry_id(entry.get())) < 0) {
        throw Error(ErrorCode::kCloneFailed,
                    "cannot read " + std::string(path) + ": " + git_message(pat_));
    }
    GitBlob blob(raw_blob);
    auto size = static_cast<size_t>(git_blob_rawsize(blob.get()));
    if (size > max_bytes) {
        throw Error(ErrorCode::kParamsFileNotFound,
                    std::string(path) + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    return std::string(static_cast<const char *>(git_blob_rawcontent(blob.get())), size);
}

void Workspace::commit_file(std::string_view path, std::string_view content,
                            std::string_view message, const Identity &who) {
    auto fail = [&](const char *what) {
        throw Error(ErrorCode::kInternalError, std::string(what) + ": " + git_message(pat_));
    };
    git_commit *raw_parent = nullptr;
    if (git_commit_lookup(&raw_parent, repo_.get(), &tip_) < 0)
        fail("cannot read the parent commit");
    GitCommit parent(raw_parent);
    git_tree *raw_tree = nullptr;
    if (git_commit_tree(&raw_tree, parent.get()) < 0) fail("cannot read the parent tree");
    GitTree parent_tree(raw_tree);

    // An in-memory index: neither the working tree nor .git/index changes.
    git_index *raw_index = nullptr;
    if (git_index_new(&raw_index) < 0) fail("cannot create an index");
    GitIndex index(raw_index);
    if (git_index_read_tree(index.get(), parent_tree.get()) < 0) fail("cannot read the tree");

    std::string p(path);
    uint32_t mode = GIT_FILEMODE_BLOB;
    if (const git_index_entry *existing = git_index_get_bypath(index.get(), p.c_str(), 0)) {
        mode = existing->mode;
    }
    git_index_entry entry{};
    entry.path = p.c_str();
    entry.mode = mode;
    entry.file_size = static_cast<uint32_t>(content.size());
    if (git_blob_create_from_buffer(&entry.id, repo_.get(), content.data(), content.size()) < 0) {
        fail("cannot write the blob");
    }
    if (git_index_add(index.get(), &entry) < 0) fail("cannot stage the file");
    git_oid tree_oid;
    if (git_index_write_tree_to(&tree_oid, index.get(), repo_.get()) < 0)
        fail("cannot write the tree");
    git_tree *raw_new_tree = nullptr;
    if (git_tree_lookup(&raw_new_tree, repo_.get(), &tree_oid) < 0)
        fail("cannot read the new tree");
    GitTree tree(raw_new_tree);

    git_signature *raw_sig = nullptr;
    if (git_signature_now(&raw_sig, who.name.c_str(), who.email.c_str()) < 0) {
        fail("invalid git author name or email");
    }
    GitSignature sig(raw_sig);
    std::string msg(message);
    const git_commit *parents[] = {parent.get()};
    git_oid commit_oid;
    if (git_commit_create(&commit_oid, repo_.get(), nullptr, sig.get(), sig.get(), nullptr,
                          msg.c_str(), tree.get(), 1, parents) < 0) {
        fail("cannot create the commit");
    }
    git_oid_cpy(&tip_, &commit_oid);
}

std::string Workspace::create_branch() {
    if (spec_.branch.empty()) {
        throw Error(ErrorCode::kInternalError, "no branch to push");
    }
    const std::string &branch = spec_.branch;
    std::string refname = "refs/heads/" + branch;
    git_reference *raw_ref = nullptr;
    int rc =
        git_reference_create(&raw_ref, repo_.get(), refname.c_str(), &tip_, 1, "relyloop: push");
    GitReference created(raw_ref);  // the branch is what counts, not the handle
    if (rc < 0) {
        throw Error(ErrorCode::kPushFailed,
                    "cannot create the local branch " + branch + ": " + git_message(pat_));
    }
    char hex[GIT_OID_HEXSZ + 1] = {};
    git_oid_tostr(hex, sizeof hex, &tip_);
    return hex;
}

void Workspace::push() {
    create_branch();
    const std::string &branch = spec_.branch;
    std::string refname = "refs/heads/" + branch;

    GitRemote origin = memory_remote(repo_.get(), spec_.url, pat_);

    CallbackState state{cancel_, &pat_};
    git_push_options po;
    git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
    install_callbacks(po.callbacks, &state);
    po.follow_redirects = GIT_REMOTE_REDIRECT_NONE;

    StreamCancelScope scope(cancel_);
    // No leading '+': the remote must fast-forward (i.e. create) the branch.
    std::string spec = refname + ":" + refname;
    char *specs[] = {spec.data()};
    git_strarray refspecs = {specs, 1};
    int rc = git_remote_push(origin.get(), &refspecs, &po);
    if (state.cancelled || (rc < 0 && cancel_ != nullptr && cancel_->load())) {
        throw worker::Cancelled();
    }
    if (rc < 0) {
        throw Error(ErrorCode::kPushFailed, "push of " + branch + " failed: " + describe(rc, pat_));
    }
    if (!state.rejected.empty()) {
        throw Error(ErrorCode::kPushFailed,
                    "the remote rejected " + redact(state.rejected, pat_.reveal()));
    }
}

}  // namespace relyloop::git
