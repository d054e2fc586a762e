// POST /webhooks/github (the relyloop_webhook location): the steps of
// docs/webhooks.md in order — parse, repository, candidates, signature, then
// one statement that records the delivery and applies it in one transaction.

#include "api/webhook.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <optional>
#include <utility>

#include "api/uri.hpp"
#include "common/json_writer.hpp"
#include "common/raii.hpp"
#include "common/secret.hpp"
#include "common/strings.hpp"
#include "common/timefmt.hpp"

namespace relyloop::core {

namespace {

constexpr int kMaxDepth = 64;

// Depth of nested arrays/objects; stops counting past the limit.
int depth(const json_t *v, int level) {
    if (level > kMaxDepth) {
        return level;
    }
    int deepest = level;
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach(const_cast<json_t *>(v), key, child) {
            deepest = std::max(deepest, depth(child, level + 1));
            if (deepest > kMaxDepth) {
                break;
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child) {
            deepest = std::max(deepest, depth(child, level + 1));
            if (deepest > kMaxDepth) {
                break;
            }
        }
    }
    return deepest;
}

bool repo_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

const json_t *member(const json_t *obj, const char *name) {
    return json_is_object(obj) ? json_object_get(obj, name) : nullptr;
}

std::optional<std::string> timestamp_member(const json_t *obj, const char *name) {
    const json_t *v = member(obj, name);
    if (!json_is_string(v)) {
        return std::nullopt;
    }
    return parse_rfc3339(std::string_view(json_string_value(v), json_string_length(v)));
}

}  // namespace

std::optional<std::string> webhook_repository(std::string_view full_name) {
    std::string s = ascii_lower(trim_ascii_space(full_name));
    if (s.ends_with(".git")) {
        s.resize(s.size() - 4);
    }
    size_t slash = s.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == s.size()) {
        return std::nullopt;
    }
    for (size_t i = 0; i < s.size(); i++) {
        if (i != slash && !repo_char(s[i])) {
            return std::nullopt;
        }
    }
    return s;
}

std::optional<std::array<unsigned char, 32>> webhook_signature(std::string_view header) {
    constexpr std::string_view kPrefix = "sha256=";
    if (header.size() != kPrefix.size() + 64 || !header.starts_with(kPrefix)) {
        return std::nullopt;
    }
    std::array<unsigned char, 32> out{};
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_value(header[kPrefix.size() + 2 * i]);
        int lo = hex_value(header[kPrefix.size() + 2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return out;
}

bool webhook_signature_matches(std::string_view key, std::string_view body,
                               const std::array<unsigned char, 32> &expected) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char *>(body.data()), body.size(), mac,
             &len) == nullptr ||
        len != expected.size()) {
        return false;
    }
    bool same = CRYPTO_memcmp(mac, expected.data(), expected.size()) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return same;
}

WebhookEvent webhook_event(std::string_view gh_event, const json_t *payload) {
    WebhookEvent e;
    if (gh_event == "ping") {
        e.kind = "ping";
        return e;
    }
    if (gh_event != "pull_request") {
        return e;
    }
    const json_t *pr = member(payload, "pull_request");
    e.updated_at = timestamp_member(pr, "updated_at");
    const json_t *url = member(pr, "html_url");
    const json_t *action = member(payload, "action");
    if (!json_is_string(url) || json_string_length(url) == 0 || !json_is_string(action)) {
        return e;
    }
    std::string_view act(json_string_value(action), json_string_length(action));
    e.html_url.assign(json_string_value(url), json_string_length(url));
    if (act == "closed") {
        e.merged_at = timestamp_member(pr, "merged_at");
        e.kind = json_is_true(member(pr, "merged")) && e.merged_at ? "merged" : "closed";
        if (e.kind == "closed") {
            e.merged_at.reset();
        }
    } else if (act == "reopened") {
        e.kind = "reopened";
    }
    return e;
}

namespace {

class WebhookHandler : public Handler {
  public:
    WebhookHandler(std::string delivery, std::string event, std::string signature)
        : Handler(Endpoint::kNone),
          delivery_(std::move(delivery)),
          event_(std::move(event)),
          signature_(std::move(signature)) {}

    Action start(Context &ctx) override {
        std::string_view body = ctx.body();
        if (body.empty()) {
            payload_.reset(json_object());
        } else {
            json_error_t err;
            payload_.reset(json_loadb(body.data(), body.size(), JSON_DECODE_ANY, &err));
            if (!payload_ || depth(payload_.get(), 1) > kMaxDepth) {
                return refuse(ctx, "malformed_payload");
            }
        }
        if (!json_is_object(payload_.get())) {
            return refuse(ctx, "non_object_payload");
        }
        const json_t *name = member(member(payload_.get(), "repository"), "full_name");
        std::optional<std::string> repo;
        if (json_is_string(name)) {
            repo = webhook_repository(
                std::string_view(json_string_value(name), json_string_length(name)));
        }
        if (!repo) {
            return refuse(ctx, "unparseable_repository");
        }
        return Action::query(db::Stmt::kWebhookCandidates, {*repo, ctx.conf().github_web_url});
    }

    Action on_rows(Context &ctx, const PGresult *res) override {
        if (phase_ == Phase::kCandidates) {
            return on_candidates(ctx, res);
        }
        return on_applied(ctx, res);
    }

    Action on_db_error(Context &ctx, const DbFailure &f) override {
        Action a = Handler::on_db_error(ctx, f);
        if (a.response.status == 503) {
            ctx.log(RL_LOG_INFO, outcome_line("webhook_received", "error", "", "database"));
        }
        return a;
    }

  private:
    enum class Phase { kCandidates, kApply };

    // id, webhook_secret_ref (ordered created_at, id)
    Action on_candidates(Context &ctx, const PGresult *res) {
        expect_columns(res, 2);
        auto expected = webhook_signature(signature_);
        std::string repo_id;
        bool computed = false;
        for (int i = 0; expected && i < PQntuples(res) && repo_id.empty(); i++) {
            Secret secret;
            std::string_view ref(PQgetvalue(res, i, 1), PQgetlength(res, i, 1));
            if (check_secret_file(ctx.conf().secrets_dir, ref, &secret) != SecretStatus::kOk) {
                continue;
            }
            computed = true;
            if (webhook_signature_matches(secret.reveal(), ctx.body(), *expected)) {
                repo_id.assign(PQgetvalue(res, i, 0), PQgetlength(res, i, 0));
            }
        }
        if (expected && !computed) {
            // An unknown repository costs the same HMAC over the body as a
            // known one: the refusal's timing must not list the configured
            // repositories (docs/webhooks.md).
            (void)webhook_signature_matches("relyloop: no candidate", ctx.body(), *expected);
        }
        if (PQntuples(res) == 0) {
            return refuse(ctx, "unknown_repo");
        }
        if (repo_id.empty()) {
            return refuse(ctx, "bad_signature");
        }
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256(reinterpret_cast<const unsigned char *>(ctx.body().data()), ctx.body().size(),
               digest);
        WebhookEvent e = webhook_event(event_, payload_.get());
        phase_ = Phase::kApply;
        Param delivery;
        if (!delivery_.empty()) {
            delivery = delivery_;
        }
        Param html_url;
        if (!e.html_url.empty()) {
            html_url = e.html_url;
        }
        return Action::write(
            db::Stmt::kWebhookApply,
            {hex_lower(digest, sizeof digest), std::move(delivery), event_, e.kind,
             std::move(html_url), e.merged_at, e.updated_at,
             std::to_string(ctx.conf().webhook_replay_window_s), std::move(repo_id)});
    }

    // replayed, stale, action, proposal_id, pointers (JSONB array)
    Action on_applied(Context &ctx, const PGresult *res) {
        expect_one_row(res, 5, "webhook apply");
        bool replayed = std::string_view(PQgetvalue(res, 0, 0)) == "t";
        bool stale = std::string_view(PQgetvalue(res, 0, 1)) == "t";
        std::string action(PQgetvalue(res, 0, 2), PQgetlength(res, 0, 2));
        std::string proposal(PQgetvalue(res, 0, 3), PQgetlength(res, 0, 3));
        if (!replayed) {
            log_pointers(ctx, std::string_view(PQgetvalue(res, 0, 4), PQgetlength(res, 0, 4)));
        }
        const char *result = replayed ? "replayed" : stale ? "stale" : "processed";
        if (replayed) {
            ctx.log(RL_LOG_INFO, outcome_line("webhook_replayed", action, proposal, result));
        } else if (stale) {
            ctx.log(RL_LOG_INFO, outcome_line("webhook_stale_delivery", action, proposal, result));
        }
        ctx.log(RL_LOG_INFO, outcome_line("webhook_received", action, proposal, result));
        std::string body = R"({"status":"ok","action":)";
        json::write_string(body, action);
        body += replayed ? R"(,"replayed":true})" : "}";
        return Action::respond(json_response(200, std::move(body)));
    }

    void log_pointers(Context &ctx, std::string_view text) {
        json_error_t err;
        Json arr(json_loadb(text.data(), text.size(), 0, &err));
        size_t i;
        json_t *item;
        json_array_foreach(arr.get(), i, item) {
            json_t *updated = json_object_get(item, "updated");
            bool moved = json_is_true(updated);
            json_object_del(item, "updated");
            std::string line = moved ? "config_repo_last_merged_pointer_updated "
                                     : "config_repo_last_merged_pointer_skipped_older ";
            line += json::dump(item);
            ctx.log(RL_LOG_INFO, line);
        }
    }

    // One log line of this delivery: `<name> {"delivery_id":…,"gh_event":…,…}`
    // with `fields` after those two keys, a string each or null (nullopt).
    using LogField = std::pair<const char *, std::optional<std::string_view>>;
    std::string log_line(std::string_view name, std::initializer_list<LogField> fields) const {
        std::string s(name);
        s += R"( {"delivery_id":)";
        if (delivery_.empty()) {
            s += "null";
        } else {
            json::write_string(s, delivery_);
        }
        s += R"(,"gh_event":)";
        json::write_string(s, event_);
        for (const auto &[key, value] : fields) {
            s += ",\"";
            s += key;
            s += "\":";
            if (value) {
                json::write_string(s, *value);
            } else {
                s += "null";
            }
        }
        s += '}';
        return s;
    }

    // The outcome lines (webhook_received and the like); no proposal is null.
    std::string outcome_line(std::string_view name, std::string_view action,
                             std::string_view proposal, std::string_view result) const {
        std::optional<std::string_view> pid;
        if (!proposal.empty()) {
            pid = proposal;
        }
        return log_line(name, {{"action", action}, {"proposal_id", pid}, {"result", result}});
    }

    Action refuse(Context &ctx, const char *reason) const {
        ctx.log(RL_LOG_INFO, log_line("webhook_invalid_signature", {{"reason", reason}}));
        return Action::respond(error_response(403, "INVALID_SIGNATURE",
                                              "Signature mismatch or unknown repository.", false));
    }

    std::string delivery_;
    std::string event_;
    std::string signature_;
    Json payload_;
    Phase phase_ = Phase::kCandidates;
};

}  // namespace

std::string webhook_delivery_id(std::string_view header) {
    if (header.empty() || header.size() > 64) {
        return {};
    }
    for (char c : header) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
            return {};
        }
    }
    return std::string(header);
}

std::unique_ptr<Handler> make_webhook_handler(std::string_view delivery, std::string_view event,
                                              std::string_view signature) {
    // An event name goes into a log line and a VARCHAR(64) column: anything
    // but a plain token is kept as "" (it is not an event this code handles).
    std::string ev(event);
    bool plain = ev.size() <= 64;
    for (char c : ev) {
        plain = plain &&
                (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
    }
    return std::make_unique<WebhookHandler>(webhook_delivery_id(delivery),
                                            plain ? std::move(ev) : std::string(),
                                            std::string(signature));
}

}  // namespace relyloop::core
