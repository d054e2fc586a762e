#include "webhook_jobs.hpp"

#include <jansson.h>
#include <string.h>

#include "common/lock_key.hpp"
#include "common/redact.hpp"
#include "common/secret.hpp"
#include "common/validate.hpp"
#include "db.hpp"
#include "pipeline/cancel.hpp"
#include "pipeline/github_client.hpp"
#include "pipeline/json_text.hpp"

namespace relyloop::worker {

namespace {

using namespace std::chrono_literals;

// How long a claim lasts without renewal; renewed before each GitHub call,
// which with the client's retries lasts at most ~3.5 min.
constexpr std::chrono::minutes kLease{5};

struct Claimed {
    std::string id;
    std::string config_repo_id;
    int attempts = 0;
};

enum class Kind { kSucceeded, kSkipped, kFailed, kRetry, kLockBusy };

struct Outcome {
    Kind kind = Kind::kFailed;
    std::string event;    // webhook_jobs.last_event
    std::string message;  // webhook_registration_error (redacted); "" = NULL
};

Outcome failed(std::string msg) { return {Kind::kFailed, "register_webhook_failed", redact(msg)}; }
Outcome retry(std::string msg) { return {Kind::kRetry, "register_webhook_retry", redact(msg)}; }

std::string unreachable(const github::HttpResponse &r) {
    return "GitHub unreachable \u2014 network error: " +
           (r.transport_class.empty() ? std::string("io") : r.transport_class);
}

std::optional<Claimed> claim(PGconn *conn, const std::string &worker_id) {
    PgResult res = db::exec(
        conn,
        "UPDATE webhook_jobs SET state = 'running', attempts = attempts + 1, worker_id = $1, "
        "lease_until = now() + make_interval(secs => $2::int), started_at = now(), "
        "last_event = 'register_webhook_claimed' "
        "WHERE id = (SELECT id FROM webhook_jobs WHERE (state = 'queued' AND run_after <= now()) "
        "OR (state = 'running' AND lease_until < now()) ORDER BY run_after, created_at, id "
        "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, config_repo_id, attempts",
        {worker_id, std::to_string(std::chrono::seconds(kLease).count())});
    if (PQntuples(res.get()) != 1) {
        return std::nullopt;
    }
    return Claimed{db::get_or(res.get(), 0, 0), db::get_or(res.get(), 0, 1),
                   static_cast<int>(db::get_int(res.get(), 0, 2))};
}

bool renew(PGconn *conn, const Claimed &c, const std::string &worker_id) {
    PgResult res = db::exec(conn,
                            "UPDATE webhook_jobs SET lease_until = now() + make_interval(secs => "
                            "$4::int) WHERE id = $1 AND worker_id = $2 AND attempts = $3::int "
                            "AND state = 'running' RETURNING id",
                            {c.id, worker_id, std::to_string(c.attempts),
                             std::to_string(std::chrono::seconds(kLease).count())});
    return PQntuples(res.get()) == 1;
}

// Writes the outcome, fenced by our claim; the job row and the config repo's
// webhook_registration_error in one statement.
bool record(PGconn *conn, const Claimed &c, const std::string &worker_id, const Outcome &o,
            std::chrono::milliseconds lock_retry_delay) {
    std::vector<db::Param> p{c.id, worker_id, std::to_string(c.attempts), o.event};
    const char *job_set = nullptr;
    bool touch_repo = true;
    std::string state;
    switch (o.kind) {
        case Kind::kSucceeded:
        case Kind::kSkipped:
            job_set =
                "state = 'succeeded', finished_at = now(), lease_until = NULL, "
                "last_event = $4, last_error = NULL";
            touch_repo = o.kind == Kind::kSucceeded;
            break;
        case Kind::kFailed:
            job_set =
                "state = 'failed', finished_at = now(), lease_until = NULL, "
                "last_event = $4, last_error = $5";
            break;
        case Kind::kRetry:
            if (c.attempts <= 3) {
                job_set =
                    "state = 'queued', lease_until = NULL, worker_id = NULL, "
                    "last_event = $4, last_error = $5, run_after = now() + "
                    "make_interval(mins => $6::int)";
            } else {
                job_set =
                    "state = 'failed', finished_at = now(), lease_until = NULL, "
                    "last_event = $4, last_error = $5";
                p[3] = std::string("register_webhook_failed");
            }
            break;
        case Kind::kLockBusy:
            job_set =
                "state = 'queued', lease_until = NULL, worker_id = NULL, "
                "attempts = attempts - 1, last_event = $4, run_after = now() + "
                "make_interval(secs => $6::int)";
            touch_repo = false;
            break;
    }
    p.push_back(o.message.empty() ? db::Param{} : db::Param{o.message});
    if (o.kind == Kind::kRetry) {
        p.push_back(std::to_string(kWebhookRetryMinutes[std::min(std::max(c.attempts, 1), 3) - 1]));
    } else if (o.kind == Kind::kLockBusy) {
        p.push_back(std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(lock_retry_delay).count()));
    } else {
        p.push_back(std::nullopt);
    }
    std::string sql = std::string("WITH j AS (UPDATE webhook_jobs SET ") + job_set +
                      " WHERE id = $1 AND worker_id = $2 AND attempts = $3::int AND state = "
                      "'running' AND $6::text IS NOT DISTINCT FROM $6::text "
                      "RETURNING config_repo_id) ";
    if (touch_repo) {
        sql +=
            "UPDATE config_repos r SET webhook_registration_error = $5 FROM j "
            "WHERE r.id = j.config_repo_id RETURNING j.config_repo_id";
    } else {
        sql += "SELECT config_repo_id FROM j WHERE $5::text IS NOT DISTINCT FROM $5::text";
    }
    PgResult res = db::exec(conn, sql.c_str(), p);
    return PQntuples(res.get()) == 1 || !touch_repo;
}

class Run {
  public:
    Run(const Settings &s, EventLog &log, PGconn *conn, const Claimed &c,
        const std::atomic<bool> *stop)
        : s_(s), log_(log), conn_(conn), c_(c), stop_(stop) {}

    Outcome go();

  private:
    Outcome hooks(const RepoCoordinates &coords, const Secret &pat, const Secret &secret);

    const Settings &s_;
    EventLog &log_;
    PGconn *conn_;
    const Claimed &c_;
    const std::atomic<bool> *stop_;
};

Outcome Run::go() {
    PgResult row = db::exec(conn_,
                            "SELECT repo_url, COALESCE(auth_ref, ''), webhook_secret_ref "
                            "FROM config_repos WHERE id = $1",
                            {c_.config_repo_id});
    if (PQntuples(row.get()) != 1 || !db::get(row.get(), 0, 2)) {
        return {Kind::kSkipped, "register_webhook_skipped", ""};
    }
    std::string repo_url = db::get_or(row.get(), 0, 0);
    std::string auth_ref = db::get_or(row.get(), 0, 1);
    std::string secret_ref = db::get_or(row.get(), 0, 2);
    auto coords = parse_repo_url(repo_url, s_.github_web_url);
    if (!coords) {
        return failed(
            "Unsupported provider: Only GitHub repositories are supported: repo_url "
            "must be " +
            s_.github_web_url +
            "/<owner>/<repo> (github_web_url); GitLab, Bitbucket and other providers "
            "are not supported");
    }
    Secret pat;
    if (check_secret_file(s_.secrets_dir, auth_ref, &pat) != SecretStatus::kOk) {
        return failed("PAT not configured: " + s_.secrets_dir + "/" + auth_ref +
                      " is missing or empty.");
    }
    Secret secret;
    if (check_secret_file(s_.secrets_dir, secret_ref, &secret) != SecretStatus::kOk) {
        return failed("Webhook secret not configured: " + s_.secrets_dir + "/" + secret_ref +
                      " is missing or empty.");
    }
    if (s_.webhook_url.empty()) {
        return failed(
            "RELYLOOP_BASE_URL is not configured; GitHub cannot reach this install. Set "
            "--webhook-url or --base-url and re-register.");
    }
    // Steps 6–7 under the config repo's lock and one per GitHub repository.
    int64_t keys[2] = {config_repo_lock_key(c_.config_repo_id),
                       config_repo_lock_key("github:" + coords->owner + "/" + coords->repo)};
    // Whatever fails from the first lock on (a statement, GitHub), no lock of
    // this thread's own connection outlives the run: there is none to keep.
    int held = 0;
    Outcome o;
    try {
        for (int64_t k : keys) {
            PgResult r =
                db::exec(conn_, "SELECT pg_try_advisory_lock($1::bigint)", {std::to_string(k)});
            if (db::get_or(r.get(), 0, 0) != "t") break;
            held++;
        }
        if (held < 2) {
            o = {Kind::kLockBusy, "register_webhook_lock_busy", ""};
        } else {
            o = hooks(*coords, pat, secret);
        }
        for (int i = 0; i < held; i++) {
            (void)db::exec(conn_, "SELECT pg_advisory_unlock($1::bigint)",
                           {std::to_string(keys[i])});
        }
    } catch (...) {
        PgResult u(PQexec(conn_, "SELECT pg_advisory_unlock_all()"));
        throw;
    }
    return o;
}

Outcome Run::hooks(const RepoCoordinates &coords, const Secret &pat, const Secret &secret) {
    github::CurlTransport curl(github::CurlOptions{s_.ca_file}, pat, stop_);
    github::Client gh(s_.github_api_url, curl, github::Timing::real(stop_));
    const std::string base = gh.repo_url(coords.owner, coords.repo) + "/hooks";
    const std::string &url = s_.webhook_url;

    if (!renew(conn_, c_, s_.worker_id)) throw Cancelled();
    github::HttpResponse list = gh.call_final({"GET", base + "?per_page=100", ""});
    if (list.status == 0) return retry(unreachable(list));
    if (list.status >= 400) {
        std::string m = "GitHub returned " + std::to_string(list.status) +
                        " listing webhooks \u2014 check PAT scope (admin:repo_hook required).";
        return list.status >= 500 || list.status == 429 ? retry(m) : failed(m);
    }
    Json doc = json_parse(list.body);
    if (!json_is_array(doc.get())) {
        return failed("GitHub returned non-JSON response listing webhooks.");
    }
    for (size_t i = 0; i < json_array_size(doc.get()); i++) {
        const json_t *hook = json_array_get(doc.get(), i);
        const json_t *cu = json_object_get(json_object_get(hook, "config"), "url");
        if (json_is_string(cu) && url == json_string_value(cu)) {
            const json_t *id = json_object_get(hook, "id");
            log_.info(
                "register_webhook_exists",
                {{"config_repo_id", c_.config_repo_id},
                 {"hook_id",
                  json_is_integer(id) ? static_cast<long long>(json_integer_value(id)) : 0LL}});
            return {Kind::kSucceeded, "register_webhook_exists", ""};
        }
    }

    if (!renew(conn_, c_, s_.worker_id)) throw Cancelled();
    Json req(json_pack("{s:s, s:b, s:[s], s:{s:s, s:s, s:s, s:s}}", "name", "web", "active", 1,
                       "events", "pull_request", "config", "url", url.c_str(), "content_type",
                       "json", "secret", secret.reveal().c_str(), "insecure_ssl", "0"));
    if (!req) throw std::bad_alloc();
    github::HttpRequest post{"POST", base, json_text(req.get()), ""};
    // The body is the only copy of the secret outside the Secret: wipe both.
    json_t *cfg = json_object_get(req.get(), "config");
    if (json_t *sv = json_object_get(cfg, "secret")) {
        explicit_bzero(const_cast<char *>(json_string_value(sv)), json_string_length(sv));
    }
    github::HttpResponse created;
    try {
        created = gh.call_final(post);
    } catch (...) {
        explicit_bzero(post.body.data(), post.body.size());
        throw;
    }
    explicit_bzero(post.body.data(), post.body.size());
    if (created.status == 200 || created.status == 201) {
        Json hook = json_parse(created.body);
        const json_t *id = json_object_get(hook.get(), "id");
        log_.info("register_webhook_created",
                  {{"config_repo_id", c_.config_repo_id},
                   {"hook_id",
                    json_is_integer(id) ? static_cast<long long>(json_integer_value(id)) : 0LL}});
        return {Kind::kSucceeded, "register_webhook_created", ""};
    }
    if (created.status == 0) return retry(unreachable(created));
    if (created.status == 404) {
        return failed(
            "GitHub returned 404 \u2014 PAT lacks admin:repo_hook scope or the configured repo "
            "doesn't exist.");
    }
    if (created.status == 422) {
        return failed(
            "GitHub returned 422 \u2014 webhook payload was rejected. Inspect the hook config "
            "(URL reachable from GitHub?).");
    }
    if (created.status >= 500) {
        return retry("GitHub returned " + std::to_string(created.status) +
                     " \u2014 transient. Re-enqueue the job manually after GitHub's status "
                     "recovers.");
    }
    std::string m = "GitHub returned " + std::to_string(created.status) + " creating webhook.";
    return created.status == 429 ? retry(m) : failed(m);
}

}  // namespace

WebhookJobRunner::WebhookJobRunner(const Settings &settings, EventLog &log)
    : settings_(settings), log_(log) {}

WebhookJobRunner::~WebhookJobRunner() {
    request_stop();
    join();
}

void WebhookJobRunner::start() {
    thread_.start([this] { thread_main(); });
}

void WebhookJobRunner::request_stop() noexcept { thread_.request_stop(); }

void WebhookJobRunner::join() noexcept { thread_.join(); }

void WebhookJobRunner::thread_main() noexcept {
    db::Backoff backoff(10s);
    PgConn conn;
    while (!thread_.stopping()) {
        if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
            std::string err;
            conn = db::connect(settings_.pg_conninfo, "relyloop-worker webhooks", &log_, &err);
            if (!conn) {
                thread_.sleep_for(backoff.next());
                continue;
            }
            backoff.reset();
        }
        try {
            std::optional<Claimed> job = claim(conn.get(), settings_.worker_id);
            if (!job) {
                thread_.sleep_for(1s);
                continue;
            }
            log_.info("register_webhook_started", {{"job_id", job->id},
                                                   {"config_repo_id", job->config_repo_id},
                                                   {"attempt", job->attempts}});
            Outcome o;
            try {
                o = Run(settings_, log_, conn.get(), *job, thread_.stop_flag()).go();
            } catch (const Cancelled &) {
                // Stopping, or the lease was lost: leave the claim to expire.
                log_.info("register_webhook_abandoned", {{"job_id", job->id}});
                continue;
            }
            bool ok = record(
                conn.get(), *job, settings_.worker_id, o,
                std::chrono::duration_cast<std::chrono::milliseconds>(settings_.lock_retry_delay));
            Level lvl = o.kind == Kind::kFailed ? Level::kWarn : Level::kInfo;
            log_.write(lvl, "register_webhook_finished",
                       {{"job_id", job->id},
                        {"config_repo_id", job->config_repo_id},
                        {"outcome", o.event},
                        {"message", o.message},
                        {"recorded", ok}});
        } catch (const DbError &e) {
            log_.warn("register_webhook_db_error", {{"message", e.what()}});
            if (db::is_connection_error(e, conn.get())) conn.reset();
            thread_.sleep_for(backoff.next());
        } catch (const std::exception &e) {
            log_.error("register_webhook_error", {{"message", e.what()}});
            thread_.sleep_for(1s);
        }
    }
}

}  // namespace relyloop::worker
