#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace relyloop {

// The input rules of docs/api.md and docs/security.md, shared by the API (inside nginx) and the
// worker, which re-checks everything it reads from the database.

// config repo name: 1..128, ^[a-z0-9][a-z0-9-]*$
[[nodiscard]] bool valid_config_repo_name(std::string_view s);
// auth_ref / webhook_secret_ref: 1..128, ^[A-Za-z0-9_-]+$
[[nodiscard]] bool valid_auth_ref(std::string_view s);
// branch: ≤128, ^[A-Za-z0-9][A-Za-z0-9._/-]*$ and a valid git ref name
// (no "..", "//", "/." , trailing "/" or ".", no component ending ".lock").
[[nodiscard]] bool valid_branch_name(std::string_view s);
// template name (becomes a file name): 1..128, ^[A-Za-z0-9][A-Za-z0-9._-]*$
[[nodiscard]] bool valid_template_name(std::string_view s);
// A template name as the worker accepts it from the database, where upstream
// RelyLoop may have written it (docs/upstream-schema.md): 1..256,
// ^[A-Za-z0-9][A-Za-z0-9 ._-]*$ (spaces allowed).
[[nodiscard]] bool valid_stored_template_name(std::string_view s);
// config_path: 1..512, ^[A-Za-z0-9_./-]+$, relative, no ".." segment.
[[nodiscard]] bool valid_config_path(std::string_view s);

// A GitHub web URL (nginx's relyloop_github_web_url, the worker's --github-web-url and its other
// URL flags; docs/directives.md): "http[s]://host[:port][/path]" where host is a name of
// [A-Za-z0-9.-] not starting with '.' or '-', an IPv4 address or a bracketed IPv6 address, the
// port is 1..65535, and the path has no byte below 0x21 or above 0x7e, no '?', '#', '@' or '\'.
// Returns url without its trailing '/'s (a view into url), or nullopt. Never throws.
[[nodiscard]] std::optional<std::string_view> normalize_web_url(std::string_view url) noexcept;

struct RepoCoordinates {
    std::string owner;
    std::string repo;  // without ".git"
};

// `<web_url>/<owner>/<repo>` with an optional ".git"; owner and repo
// [A-Za-z0-9._-]+ (not "." or ".."). web_url is compared without a trailing
// slash. Anything else (GitLab, Bitbucket, ssh, http for an https web URL,
// extra segments) → nullopt, i.e. UNSUPPORTED_PROVIDER.
[[nodiscard]] std::optional<RepoCoordinates> parse_repo_url(std::string_view url,
                                                            std::string_view web_url);

// A pull request's html_url as GitHub answers it, before the worker stores it
// as pr_url (docs/runbook.md, GITHUB_API_FAILED): exactly
// `<web_url>/<owner>/<repo>/pull/<number>` — the configured web URL's scheme,
// host, port and path prefix (ASCII case-insensitive), the repo being worked
// on (GitHub names are case-insensitive), this PR's number, nothing after it
// (no query, fragment or extra segment), at most 2048 bytes.
[[nodiscard]] bool valid_pull_url(std::string_view url, std::string_view web_url,
                                  std::string_view owner, std::string_view repo, long long number);

}  // namespace relyloop
