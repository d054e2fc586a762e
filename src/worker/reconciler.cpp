#include "reconciler.hpp"

#include <jansson.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

#include "common/redact.hpp"
#include "common/secret.hpp"
#include "common/strings.hpp"
#include "common/timefmt.hpp"
#include "common/validate.hpp"
#include "db.hpp"
#include "pipeline/cancel.hpp"
#include "pipeline/github_client.hpp"
#include "pipeline/json_text.hpp"
#include "pointer.hpp"

namespace relyloop::worker {

namespace {

using SysClock = std::chrono::system_clock;

// Pages of one repository's list per tick; past it, candidates the list did
// not show are fetched one by one and the repository's cache is dropped.
constexpr int kMaxPages = 30;
constexpr long long kPruneBatch = 10000;
constexpr std::chrono::minutes kPruneEvery{60};

bool name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

struct PrRef {
    std::string owner;
    std::string repo;
    long long number = 0;
};

// <web_url>/<owner>/<repo>/pull/<number>; the web URL prefix compared
// ASCII case-insensitively.
std::optional<PrRef> parse_pr_url(std::string_view url, std::string_view web) {
    web = strip_trailing_slashes(web);
    if (url.size() <= web.size() + 1 || !iequals_ascii(url.substr(0, web.size()), web) ||
        url[web.size()] != '/') {
        return std::nullopt;
    }
    std::string_view rest = url.substr(web.size() + 1);
    std::vector<std::string_view> seg;
    while (true) {
        size_t slash = rest.find('/');
        seg.push_back(rest.substr(0, slash));
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    if (seg.size() != 4 || seg[2] != "pull") return std::nullopt;
    for (int i = 0; i < 2; i++) {
        if (seg[i].empty() || seg[i].size() > 100 ||
            !std::all_of(seg[i].begin(), seg[i].end(), name_char)) {
            return std::nullopt;
        }
    }
    if (seg[3].empty() || seg[3].size() > 15 ||
        !std::all_of(seg[3].begin(), seg[3].end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    return PrRef{std::string(seg[0]), std::string(seg[1]), std::stoll(std::string(seg[3]))};
}

std::string str_field(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

bool has_next_link(const github::HttpResponse &r) {
    const std::string *link = r.header("link");
    return link != nullptr && link->find("rel=\"next\"") != std::string::npos;
}

// A final 429, or a 403 with x-ratelimit-remaining: 0: the tick stops.
bool rate_limited(const github::HttpResponse &r) {
    if (r.status == 429) return true;
    const std::string *rem = r.header("x-ratelimit-remaining");
    return r.status == 403 && rem != nullptr && *rem == "0";
}

struct Candidate {
    std::string id;
    std::string pr_url;
    std::string state;  // as selected: "open" / "closed"
    std::optional<PrRef> ref;
};

struct RepoAccess {
    enum class Kind { kOk, kNoRepo, kPatMissing } kind = Kind::kNoRepo;
    std::string config_repo_id;
    std::unique_ptr<Secret> pat;
};

// Counts the requests a Transport sends.
class CountingTransport final : public github::Transport {
  public:
    CountingTransport(github::Transport &inner, TickSummary &s) : inner_(inner), s_(s) {}
    github::HttpResponse send(const github::HttpRequest &request) override {
        s_.github_calls++;
        github::HttpResponse r = inner_.send(request);
        if (r.status == 304) s_.not_modified++;
        return r;
    }

  private:
    github::Transport &inner_;
    TickSummary &s_;
};

}  // namespace

long long slot_of(long long epoch_minute, int n) noexcept {
    if (n <= 0) return epoch_minute;
    return (epoch_minute / n) * n;
}

// One tick's work (a class so the helpers share the connection and counts).
class TickRun {
  public:
    TickRun(Reconciler &r, PGconn *conn) : r_(r), conn_(conn) {}

    TickSummary run();

  private:
    void load_repos();
    RepoAccess &access(const PrRef &ref);
    void do_repo(const std::string &key, std::vector<Candidate *> &cands);
    // GitHub's answer for one PR in hand: the decisions of docs/worker.md, "PR state reconciler".
    void apply(const Candidate &c, const Reconciler::PrInfo &info);
    // A failed request (after the client's retries): the failure rules there.
    void request_failed(const Candidate &c, const github::HttpResponse &r);
    void errored(const Candidate &c, const char *event, std::initializer_list<Field> extra = {});

    Reconciler &r_;
    PGconn *conn_;
    TickSummary s_;
    struct RepoRow {
        std::string id, repo_url, auth_ref;
    };
    std::vector<RepoRow> repos_;
    std::map<std::string, RepoAccess> access_;
};

void TickRun::load_repos() {
    PgResult res = db::exec(conn_,
                            "SELECT id, repo_url, COALESCE(auth_ref, '') FROM config_repos "
                            "ORDER BY created_at, id");
    for (int i = 0; i < PQntuples(res.get()); i++) {
        repos_.push_back({db::get_or(res.get(), i, 0), db::get_or(res.get(), i, 1),
                          db::get_or(res.get(), i, 2)});
    }
}

RepoAccess &TickRun::access(const PrRef &ref) {
    std::string key = ascii_lower(ref.owner) + "/" + ascii_lower(ref.repo);
    auto it = access_.find(key);
    if (it != access_.end()) return it->second;
    RepoAccess a;
    for (const RepoRow &row : repos_) {
        auto coords = parse_repo_url(row.repo_url, r_.settings_.github_web_url);
        if (!coords || !iequals_ascii(coords->owner, ref.owner) ||
            !iequals_ascii(coords->repo, ref.repo)) {
            continue;
        }
        a.kind = RepoAccess::Kind::kPatMissing;
        auto pat = std::make_unique<Secret>();
        if (check_secret_file(r_.settings_.secrets_dir, row.auth_ref, pat.get()) ==
            SecretStatus::kOk) {
            a.kind = RepoAccess::Kind::kOk;
            a.config_repo_id = row.id;
            a.pat = std::move(pat);
            break;
        }
    }
    return access_.emplace(key, std::move(a)).first->second;
}

void TickRun::errored(const Candidate &c, const char *event, std::initializer_list<Field> extra) {
    s_.errored++;
    std::vector<Field> f{{"proposal_id", c.id}, {"pr_url", c.pr_url}};
    f.insert(f.end(), extra.begin(), extra.end());
    // EventLog takes an initializer_list: the common shapes spelled out.
    if (f.size() == 2) {
        r_.log_.warn(event, {f[0], f[1]});
    } else {
        r_.log_.warn(event, {f[0], f[1], f[2]});
    }
}

void TickRun::request_failed(const Candidate &c, const github::HttpResponse &r) {
    if (r.status == 0) {
        errored(c, "pr_reconcile_request_error", {{"message", github::github_error_message(r)}});
    } else if (r.status == 401 || r.status == 403 || r.status == 404 || r.status >= 500) {
        errored(c, "pr_reconcile_terminal_error",
                {{"status_code", static_cast<long long>(r.status)}});
    } else {
        errored(c, "pr_reconcile_unexpected_status",
                {{"status_code", static_cast<long long>(r.status)}});
    }
}

void TickRun::apply(const Candidate &c, const Reconciler::PrInfo &info) {
    std::optional<std::string> merged_at;
    if (info.merged && !info.merged_at.empty()) merged_at = parse_rfc3339(info.merged_at);
    if (merged_at) {
        bool changed = false;
        db::exec(conn_, "BEGIN");
        try {
            PgResult res =
                db::exec(conn_,
                         "UPDATE proposals SET status = 'pr_merged', pr_state = 'merged', "
                         "pr_merged_at = $2::timestamptz WHERE id = $1 AND status = 'pr_opened' "
                         "AND pr_state = $3 RETURNING id",
                         {c.id, *merged_at, c.state});
            changed = PQntuples(res.get()) == 1;
            if (changed) {
                apply_last_merged_pointer(conn_, c.id, *merged_at, r_.log_);
            }
            db::exec(conn_, "COMMIT");
        } catch (...) {
            PgResult rb(PQexec(conn_, "ROLLBACK"));
            throw;
        }
        if (changed) {
            s_.reconciled++;
            if (c.state == "closed") {
                r_.log_.info("pr_reconcile_recovered_eventual_consistency",
                             {{"proposal_id", c.id}, {"pr_url", c.pr_url}});
            }
            r_.log_.info("pr_reconcile_merged", {{"proposal_id", c.id}, {"pr_url", c.pr_url}});
        } else {
            s_.unchanged++;
        }
        return;
    }
    if (info.state == "closed") {
        if (c.state == "closed") {
            (void)db::exec(conn_,
                           "UPDATE proposals SET last_polled_at = now() WHERE id = $1 AND "
                           "status = 'pr_opened' AND pr_state = 'closed'",
                           {c.id});
            s_.unchanged++;
            return;
        }
        PgResult res = db::exec(conn_,
                                "UPDATE proposals SET pr_state = 'closed' WHERE id = $1 AND "
                                "status = 'pr_opened' AND pr_state = 'open' RETURNING id",
                                {c.id});
        if (PQntuples(res.get()) == 1) {
            s_.reconciled++;
            r_.log_.info("pr_reconcile_closed", {{"proposal_id", c.id}, {"pr_url", c.pr_url}});
        } else {
            s_.unchanged++;
        }
        return;
    }
    if (info.state == "open") {
        if (c.state != "closed") {
            s_.unchanged++;
            return;
        }
        PgResult res = db::exec(conn_,
                                "UPDATE proposals SET pr_state = 'open' WHERE id = $1 AND "
                                "status = 'pr_opened' AND pr_state = 'closed' RETURNING id",
                                {c.id});
        if (PQntuples(res.get()) == 1) {
            s_.reconciled++;
            r_.log_.info("pr_reconcile_reopened", {{"proposal_id", c.id}, {"pr_url", c.pr_url}});
        } else {
            s_.unchanged++;
        }
        return;
    }
    errored(c, "pr_reconcile_unexpected_state", {{"state", info.state}});
}

void TickRun::do_repo(const std::string &key, std::vector<Candidate *> &cands) {
    const PrRef &ref = *cands.front()->ref;
    RepoAccess &acc = access(ref);
    if (acc.kind != RepoAccess::Kind::kOk) {
        for (Candidate *c : cands) {
            errored(*c, acc.kind == RepoAccess::Kind::kNoRepo ? "pr_reconcile_no_config_repo"
                                                              : "pr_reconcile_pat_missing");
        }
        return;
    }
    github::CurlTransport curl(github::CurlOptions{r_.settings_.ca_file}, *acc.pat,
                               r_.thread_.stop_flag());
    CountingTransport counting(curl, s_);
    github::Client gh(r_.settings_.github_api_url, counting,
                      github::Timing::real(r_.thread_.stop_flag()));
    const std::string base = gh.repo_url(ref.owner, ref.repo) +
                             "/pulls?state=all&sort=updated&direction=desc&per_page=100";

    std::set<long long> need;
    for (Candidate *c : cands) need.insert(c->ref->number);
    auto cached_it = r_.cache_.find(key);
    Reconciler::RepoCache *cache = cached_it == r_.cache_.end() ? nullptr : &cached_it->second;
    std::map<long long, Reconciler::PrInfo> seen;

    bool cache_valid = false;  // cached entries not in `seen` are current
    github::HttpRequest req{"GET", base, "", cache != nullptr ? cache->etag : ""};
    github::HttpResponse resp = gh.call_final(req);
    if (resp.status == 304 && cache != nullptr) {
        cache_valid = true;
    } else if (resp.status == 200) {
        Reconciler::RepoCache fresh;
        if (const std::string *etag = resp.header("etag")) fresh.etag = *etag;
        bool complete = true;  // every PR updated since the old watermark was seen
        for (int page = 1;; page++) {
            Json doc = json_parse(resp.body);
            if (!json_is_array(doc.get())) {
                for (Candidate *c : cands) errored(*c, "pr_reconcile_malformed_response");
                r_.cache_.erase(key);
                return;
            }
            std::string oldest;
            for (size_t i = 0; i < json_array_size(doc.get()); i++) {
                const json_t *item = json_array_get(doc.get(), i);
                const json_t *num = json_object_get(item, "number");
                if (!json_is_integer(num)) continue;
                Reconciler::PrInfo info;
                info.state = str_field(item, "state");
                info.merged_at = str_field(item, "merged_at");
                info.merged = !info.merged_at.empty();
                info.updated_at = str_field(item, "updated_at");
                if (page == 1 && fresh.watermark.empty()) fresh.watermark = info.updated_at;
                oldest = info.updated_at;
                seen[json_integer_value(num)] = std::move(info);
            }
            // Below the old watermark nothing changed since the last listing.
            bool updates_left = cache == nullptr || cache->watermark.empty() || oldest.empty() ||
                                oldest >= cache->watermark;
            bool unknown_left = false;
            for (long long n : need) {
                if (!seen.contains(n) &&
                    (cache == nullptr || !cache->prs.contains(n) || updates_left)) {
                    unknown_left = true;
                    break;
                }
            }
            bool want_more = cache == nullptr ? unknown_left : (updates_left || unknown_left);
            if (!want_more || !has_next_link(resp)) {
                complete = cache == nullptr || !updates_left || !has_next_link(resp);
                break;
            }
            if (page >= kMaxPages) {
                complete = false;
                break;
            }
            resp = gh.call_final({"GET", base + "&page=" + std::to_string(page + 1), ""});
            if (resp.status != 200) {
                if (rate_limited(resp)) {
                    s_.rate_limited++;
                    s_.stopped = true;
                    r_.log_.warn("pr_reconcile_rate_limited",
                                 {{"x_ratelimit_reset", resp.header("x-ratelimit-reset")
                                                            ? *resp.header("x-ratelimit-reset")
                                                            : std::string()}});
                    r_.cache_.erase(key);
                    return;
                }
                complete = false;
                break;
            }
        }
        if (complete) {
            if (cache != nullptr) {
                for (auto &[n, info] : cache->prs) fresh.prs.emplace(n, info);
            }
            for (auto &[n, info] : seen) fresh.prs[n] = info;
            r_.cache_[key] = std::move(fresh);
            cache = &r_.cache_[key];
            cache_valid = true;
        } else {
            r_.cache_.erase(key);
            cache = nullptr;
        }
    } else if (rate_limited(resp)) {
        s_.rate_limited++;
        s_.stopped = true;
        const std::string *reset = resp.header("x-ratelimit-reset");
        r_.log_.warn("pr_reconcile_rate_limited",
                     {{"x_ratelimit_reset", reset != nullptr ? *reset : std::string()},
                      {"repository", ref.owner + "/" + ref.repo}});
        return;
    } else {
        r_.cache_.erase(key);
        for (Candidate *c : cands) request_failed(*c, resp);
        return;
    }

    for (Candidate *c : cands) {
        long long n = c->ref->number;
        const Reconciler::PrInfo *info = nullptr;
        if (auto it = seen.find(n); it != seen.end()) {
            info = &it->second;
        } else if (cache_valid && cache != nullptr) {
            if (auto ct = cache->prs.find(n); ct != cache->prs.end()) info = &ct->second;
        }
        if (info != nullptr) {
            apply(*c, *info);
            continue;
        }
        // The list is not conclusive for this PR: fetch it alone.
        github::HttpResponse one = gh.call_final(
            {"GET", gh.repo_url(ref.owner, ref.repo) + "/pulls/" + std::to_string(n), ""});
        if (one.status == 200) {
            Json doc = json_parse(one.body);
            if (!json_is_object(doc.get())) {
                errored(*c, "pr_reconcile_malformed_response");
                continue;
            }
            Reconciler::PrInfo single;
            single.state = str_field(doc.get(), "state");
            const json_t *merged = json_object_get(doc.get(), "merged");
            single.merged = json_is_true(merged);
            single.merged_at = str_field(doc.get(), "merged_at");
            apply(*c, single);
        } else if (rate_limited(one)) {
            s_.rate_limited++;
            s_.stopped = true;
            const std::string *reset = one.header("x-ratelimit-reset");
            r_.log_.warn("pr_reconcile_rate_limited",
                         {{"x_ratelimit_reset", reset != nullptr ? *reset : std::string()},
                          {"proposal_id", c->id}});
            return;
        } else {
            request_failed(*c, one);
        }
    }
}

TickSummary TickRun::run() {
    PgResult res = db::exec(
        conn_,
        "SELECT id, pr_url, COALESCE(pr_state, '') FROM proposals WHERE status = 'pr_opened' "
        "AND pr_url IS NOT NULL AND created_at > now() - interval '90 days' AND NOT "
        "(pr_state = 'closed' AND last_polled_at IS NOT NULL AND last_polled_at > now() - "
        "interval '24 hours') ORDER BY created_at ASC, id");
    std::vector<Candidate> cands;
    for (int i = 0; i < PQntuples(res.get()); i++) {
        Candidate c{db::get_or(res.get(), i, 0), db::get_or(res.get(), i, 1),
                    db::get_or(res.get(), i, 2), std::nullopt};
        c.ref = parse_pr_url(c.pr_url, r_.settings_.github_web_url);
        cands.push_back(std::move(c));
    }
    s_.candidates = static_cast<long long>(cands.size());
    if (cands.empty()) return s_;
    load_repos();
    // Group by repository in the order of each one's oldest candidate.
    std::vector<std::string> order;
    std::map<std::string, std::vector<Candidate *>> groups;
    for (Candidate &c : cands) {
        if (!c.ref) {
            errored(c, "pr_reconcile_unparseable_url");
            continue;
        }
        std::string key = ascii_lower(c.ref->owner) + "/" + ascii_lower(c.ref->repo);
        auto [it, inserted] = groups.try_emplace(key);
        if (inserted) order.push_back(key);
        it->second.push_back(&c);
    }
    for (const std::string &key : order) {
        do_repo(key, groups[key]);
        if (s_.stopped) break;
    }
    return s_;
}

Reconciler::Reconciler(const Settings &settings, EventLog &log) : settings_(settings), log_(log) {}

Reconciler::~Reconciler() {
    request_stop();
    join();
}

void Reconciler::start() {
    thread_.start([this] { thread_main(); });
}

void Reconciler::request_stop() noexcept { thread_.request_stop(); }

void Reconciler::join() noexcept { thread_.join(); }

TickSummary Reconciler::tick(PGconn *conn) { return TickRun(*this, conn).run(); }

long long Reconciler::prune(PGconn *conn) {
    long long total = 0;
    for (;;) {
        PgResult res = db::exec(conn,
                                "DELETE FROM webhook_deliveries WHERE body_sha256 IN (SELECT "
                                "body_sha256 FROM webhook_deliveries WHERE expires_at < now() "
                                "LIMIT $1)",
                                {std::to_string(kPruneBatch)});
        const char *n = PQcmdTuples(res.get());
        long long deleted = (n != nullptr && *n != '\0') ? std::stoll(n) : 0;
        total += deleted;
        if (deleted < kPruneBatch || thread_.stopping()) break;
    }
    if (total > 0) {
        log_.info("webhook_deliveries_pruned", {{"deleted", total}});
    }
    return total;
}

bool Reconciler::claim_slot(PGconn *conn, long long slot) {
    PgResult lk = db::exec(conn, "SELECT pg_try_advisory_lock($1::bigint)",
                           {std::to_string(kReconcileLockKey)});
    if (db::get_or(lk.get(), 0, 0) != "t") {
        return false;
    }
    (void)db::exec(conn,
                   "INSERT INTO worker_ticks (name, last_slot) VALUES ($1, -1) "
                   "ON CONFLICT (name) DO NOTHING",
                   {kReconcileTickName});
    PgResult res = db::exec(conn,
                            "UPDATE worker_ticks SET last_slot = $2::bigint, last_started_at = "
                            "now() WHERE name = $1 AND COALESCE(last_slot, -1) < $2::bigint "
                            "RETURNING name",
                            {kReconcileTickName, std::to_string(slot)});
    if (PQntuples(res.get()) == 1) {
        return true;
    }
    (void)db::exec(conn, "SELECT pg_advisory_unlock($1::bigint)",
                   {std::to_string(kReconcileLockKey)});
    return false;
}

void Reconciler::thread_main() noexcept {
    const int n = settings_.pr_poll_minutes;
    long long attempted_slot = -1;
    auto last_prune = std::chrono::steady_clock::now() - kPruneEvery;
    db::Backoff backoff(std::chrono::seconds(30));
    while (!thread_.stopping()) {
        auto now = SysClock::now();
        long long minute =
            std::chrono::duration_cast<std::chrono::minutes>(now.time_since_epoch()).count();
        long long slot = slot_of(minute, n);
        bool want_tick = n > 0 && slot != attempted_slot;
        bool want_prune = std::chrono::steady_clock::now() - last_prune >= kPruneEvery;
        if (want_tick || want_prune) {
            std::string err;
            PgConn conn =
                db::connect(settings_.pg_conninfo, "relyloop-worker reconciler", &log_, &err);
            if (!conn) {
                log_.warn("db_unavailable", {{"message", "reconciler: " + err}});
                thread_.sleep_until(SysClock::now() + backoff.next());
                continue;
            }
            backoff.reset();
            try {
                (void)db::exec(conn.get(), "SET TIME ZONE 'UTC'");
                if (want_tick) {
                    attempted_slot = slot;
                    if (claim_slot(conn.get(), slot)) {
                        TickSummary s;
                        try {
                            s = tick(conn.get());
                        } catch (const Cancelled &) {
                            s.stopped = true;
                        }
                        try {
                            s.pruned = prune(conn.get());
                        } catch (const DbError &e) {
                            log_.warn("webhook_deliveries_prune_failed", {{"message", e.what()}});
                        }
                        last_prune = std::chrono::steady_clock::now();
                        Json sum(json_pack(
                            "{sI sI sI sI sI sI sI sI}", "candidates", (json_int_t)s.candidates,
                            "reconciled", (json_int_t)s.reconciled, "unchanged",
                            (json_int_t)s.unchanged, "errored", (json_int_t)s.errored,
                            "rate_limited", (json_int_t)s.rate_limited, "github_calls",
                            (json_int_t)s.github_calls, "not_modified", (json_int_t)s.not_modified,
                            "slot", (json_int_t)slot));
                        (void)db::exec(conn.get(),
                                       "UPDATE worker_ticks SET last_finished_at = now(), "
                                       "last_summary = $2::jsonb WHERE name = $1",
                                       {kReconcileTickName, json_text(sum.get())});
                        (void)db::exec(conn.get(), "SELECT pg_advisory_unlock($1::bigint)",
                                       {std::to_string(kReconcileLockKey)});
                        if (s.candidates == 0) {
                            log_.info("pr_reconcile_tick_noop", {{"slot", slot}});
                        } else {
                            log_.info("pr_reconcile_tick_complete",
                                      {{"candidates", s.candidates},
                                       {"reconciled", s.reconciled},
                                       {"unchanged", s.unchanged},
                                       {"errored", s.errored},
                                       {"rate_limited", s.rate_limited},
                                       {"github_calls", s.github_calls},
                                       {"not_modified", s.not_modified},
                                       {"slot", slot}});
                        }
                    } else {
                        // another worker (or host) holds or already ran this slot
                        log_.info("pr_reconcile_slot_taken", {{"slot", slot}});
                    }
                }
                if (std::chrono::steady_clock::now() - last_prune >= kPruneEvery) {
                    last_prune = std::chrono::steady_clock::now();
                    (void)prune(conn.get());
                }
            } catch (const DbError &e) {
                log_.warn("pr_reconcile_db_error", {{"message", e.what()}});
            } catch (const std::exception &e) {
                log_.error("pr_reconcile_failed", {{"message", e.what()}});
            }
        }
        // Wake at the next minute boundary (slots and the prune are checked
        // then), or earlier on stop.
        now = SysClock::now();
        auto next_minute = SysClock::time_point(
            std::chrono::duration_cast<std::chrono::minutes>(now.time_since_epoch()) +
            std::chrono::minutes(1));
        thread_.sleep_until(next_minute + std::chrono::milliseconds(50));
    }
}

}  // namespace relyloop::worker
