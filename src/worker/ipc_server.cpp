#include "ipc_server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/raii.hpp"
#include "db.hpp"
#include "job_store.hpp"
#include "metrics.hpp"
#include "relyloop/version.hpp"

namespace relyloop::worker {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kTagListener = 0;
constexpr uint64_t kTagDone = 1;
constexpr uint64_t kTagExtra = 2;
constexpr size_t kReadChunk = size_t{16} * 1024;

bool fill_addr(const std::string &path, sockaddr_un *addr) {
    std::memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr->sun_path) {
        return false;
    }
    std::memcpy(addr->sun_path, path.data(), path.size());
    return true;
}

}  // namespace

// A DB thread's connection, re-made on demand. A refused connect costs well
// under a millisecond, so the next request simply tries again: the thread
// recovers the moment PostgreSQL is back. Only a slow failure (an unreachable
// host, up to connect_timeout) makes the next attempt wait 500 ms, so an
// outage gives fast errors rather than a pile-up of connect timeouts.
struct IpcServer::DbSlot {
    PgConn conn;
    Clock::time_point next_attempt{};
    bool failing = false;
};

IpcServer::IpcServer(const Settings &settings, EventLog &log) : settings_(settings), log_(log) {}

IpcServer::~IpcServer() { shutdown(); }

bool IpcServer::open(std::string *error) {
    const std::string &path = settings_.socket_path;
    sockaddr_un addr{};
    if (!fill_addr(path, &addr)) {
        *error = "socket path \"" + path + "\" is empty or too long";
        return false;
    }
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *error = path + " exists and is not a socket; refusing to replace it";
            return false;
        }
        Fd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!probe) {
            *error = "socket(): " + errno_text(errno);
            return false;
        }
        int rc = connect(probe.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr);
        int err = errno;
        probe.reset();
        if (rc == 0) {
            *error = "another relyloop-worker is answering on " + path + "; refusing to start";
            return false;
        }
        if (err != ECONNREFUSED) {
            *error = "cannot probe the existing socket " + path + ": " + errno_text(err);
            return false;
        }
        if (unlink(path.c_str()) != 0 && errno != ENOENT) {
            *error = "cannot remove the stale socket " + path + ": " + errno_text(errno);
            return false;
        }
        log_.info("stale_socket_removed", {{"message", path}});
    }

    Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        *error = "socket(): " + errno_text(errno);
        return false;
    }
    // The socket file must never be wider than 0660, not even between bind()
    // and chmod(); nothing else runs yet, so the process umask is ours.
    mode_t old_mask = umask(0117);
    int rc = bind(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    int err = errno;
    umask(old_mask);
    if (rc != 0) {
        *error = "cannot bind " + path + ": " + errno_text(err) +
                 (err == EADDRINUSE ? " (another worker started at the same time?)" : "");
        return false;
    }
    socket_created_ = true;
    if (chmod(path.c_str(), 0660) != 0 || listen(fd.get(), 256) != 0 ||
        stat(path.c_str(), &st) != 0) {
        err = errno;
        fd.reset();
        unlink(path.c_str());
        socket_created_ = false;
        *error = "cannot set up " + path + ": " + errno_text(err);
        return false;
    }
    sock_dev_ = st.st_dev;
    sock_ino_ = st.st_ino;
    listen_fd_ = std::move(fd);

    epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
    done_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!epoll_fd_ || !done_fd_) {
        *error = "epoll/eventfd: " + errno_text(errno);
        return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagListener;
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, listen_fd_.get(), &ev);
    ev.data.u64 = kTagDone;
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, done_fd_.get(), &ev);
    accepting_ = true;
    return true;
}

void IpcServer::start_pool() {
    for (int i = 0; i < kDbThreads; i++) {
        pool_.emplace_back([this] { pool_main(); });
    }
}

void IpcServer::stop_accepting() noexcept {
    if (listen_fd_) {
        epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd_.get(), nullptr);
        listen_fd_.reset();
    }
    accepting_ = false;
    if (socket_created_) {
        // Only our own socket: a newer daemon may have replaced the file.
        struct stat st {};
        if (lstat(settings_.socket_path.c_str(), &st) == 0 && st.st_dev == sock_dev_ &&
            st.st_ino == sock_ino_) {
            unlink(settings_.socket_path.c_str());
        }
        socket_created_ = false;
    }
}

bool IpcServer::idle() const noexcept {
    std::lock_guard<std::mutex> lk(pool_mu_);
    return in_flight_ == 0 && done_.empty();
}

void IpcServer::shutdown() noexcept {
    stop_accepting();
    while (!clients_.empty()) {
        close_client(clients_.begin()->first);
    }
    {
        std::lock_guard<std::mutex> lk(pool_mu_);
        pool_stop_ = true;
    }
    pool_cv_.notify_all();
    for (std::thread &t : pool_) {
        if (t.joinable()) {
            t.join();
        }
    }
    pool_.clear();
    done_fd_.reset();
    epoll_fd_.reset();
}

void IpcServer::run(int extra_fd, const std::function<void()> &on_extra,
                    const std::function<bool()> &done) {
    if (extra_fd >= 0) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kTagExtra;
        epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, extra_fd, &ev);
    }
    epoll_event events[64];
    while (!done()) {
        int n = epoll_wait(epoll_fd_.get(), events, 64, posted_.empty() ? 250 : 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_.error("ipc_error", {{"message", "epoll_wait: " + errno_text(errno)}});
            break;
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag == kTagListener) {
                accept_clients();
            } else if (tag == kTagDone) {
                drain_completions();
            } else if (tag == kTagExtra) {
                on_extra();
            } else {
                auto it = clients_.find(tag);
                if (it != clients_.end()) {
                    on_client_event(*it->second, events[i].events);
                }
            }
        }
        std::vector<uint64_t> posted;
        posted.swap(posted_);
        for (uint64_t id : posted) {
            auto it = clients_.find(id);
            if (it != clients_.end()) {
                process(*it->second);
            }
        }
        expire_idle();
        if (listener_paused_ && listen_fd_ && Clock::now() >= listener_resume_) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = kTagListener;
            epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, listen_fd_.get(), &ev);
            listener_paused_ = false;
        }
    }
    if (extra_fd >= 0 && epoll_fd_) {
        epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, extra_fd, nullptr);
    }
}

void IpcServer::accept_clients() {
    while (listen_fd_) {
        int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Level-triggered: stop listening for a moment instead of
                // spinning on a connection we cannot take.
                log_.error("ipc_accept_failed", {{"message", errno_text(errno)}});
                epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd_.get(), nullptr);
                listener_paused_ = true;
                listener_resume_ = Clock::now() + std::chrono::milliseconds(500);
            }
            return;
        }
        Fd owned(fd);  // closed unless a client takes it over
        if (clients_.size() >= kMaxClients) {
            std::string msg = reply_error("too many connections");
            ssize_t w = send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            continue;
        }
        auto c = std::make_unique<Client>();
        c->id = next_id_++;
        c->last_activity = Clock::now();
        c->events = EPOLLIN;
        epoll_event ev{};
        ev.events = c->events;
        ev.data.u64 = c->id;
        if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
            continue;
        }
        c->fd = std::move(owned);
        clients_.emplace(c->id, std::move(c));
    }
}

void IpcServer::on_client_event(Client &c, uint32_t events) {
    uint64_t id = c.id;
    // EPOLLHUP on a Unix stream socket: the peer closed both directions, so
    // nobody can read a reply. (A peer's shutdown(SHUT_WR) is EPOLLIN + EOF:
    // its buffered requests are still answered.)
    if (events & (EPOLLERR | EPOLLHUP)) {
        close_client(id);
        return;
    }
    if (events & EPOLLOUT) {
        flush(c);
        if (clients_.count(id) == 0) {
            return;
        }
    }
    if (events & EPOLLIN) {
        read_client(c);
        if (clients_.count(id) == 0) {
            return;
        }
    }
    process(c);
}

void IpcServer::read_client(Client &c) {
    char buf[kReadChunk];
    // Read only while there is no complete line waiting: the framer never
    // holds more than one line limit plus one chunk.
    while (!c.eof && !c.busy && c.out.empty() && !c.close_after_write && !c.framer.has_line()) {
        ssize_t n = recv(c.fd.get(), buf, sizeof buf, 0);
        if (n > 0) {
            c.framer.feed(std::string_view(buf, static_cast<size_t>(n)));
            c.last_activity = Clock::now();
            continue;
        }
        if (n == 0) {
            c.eof = true;
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            close_client(c.id);
        }
        return;
    }
}

void IpcServer::process(Client &c) {
    uint64_t id = c.id;
    // A bounded number of rounds per event, so a client that streams
    // requests cannot starve the others (level-triggered epoll brings it back).
    for (int round = 0; round < 16; round++) {
        while (!c.busy && c.out.empty() && !c.close_after_write) {
            std::string line;
            LineFramer::Status st = c.framer.next(&line);
            if (st == LineFramer::Status::kNeedMore) {
                break;
            }
            if (st == LineFramer::Status::kTooLong) {
                c.out = reply_line_too_long();
                c.close_after_write = true;
                log_.warn("ipc_line_too_long", {{"message", "closing the connection"}});
            } else {
                ParsedRequest req = parse_request(line);
                if (!req.request) {
                    c.out = reply_error(req.error);
                } else if (!accepting_) {
                    c.out = reply_error("worker stopping");
                } else {
                    c.busy = true;
                    {
                        std::lock_guard<std::mutex> lk(pool_mu_);
                        tasks_.push_back({c.id, std::move(*req.request)});
                        in_flight_++;
                    }
                    pool_cv_.notify_one();
                    break;
                }
            }
            flush(c);
            if (clients_.count(id) == 0) {
                return;
            }
        }
        if (!c.out.empty() || c.busy) {
            break;  // waiting for EPOLLOUT or for the DB pool
        }
        if (c.close_after_write || (c.eof && !c.framer.has_line())) {
            close_client(id);
            return;
        }
        if (c.eof || c.framer.has_line()) {
            continue;
        }
        read_client(c);
        if (clients_.count(id) == 0) {
            return;
        }
        if (!c.eof && !c.framer.has_line()) {
            break;  // nothing more to do until the client sends
        }
    }
    if (!c.busy && c.out.empty() && (c.eof || c.framer.has_line())) {
        // Round limit reached with work left in our buffer, which no epoll
        // event would announce: come back on the next loop iteration.
        posted_.push_back(id);
    }
    update_interest(c);
}

void IpcServer::flush(Client &c) {
    while (!c.out.empty()) {
        ssize_t n = send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
            c.out.erase(0, static_cast<size_t>(n));
            c.last_activity = Clock::now();
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            update_interest(c);
            return;
        }
        close_client(c.id);
        return;
    }
}

void IpcServer::update_interest(Client &c) {
    uint32_t want = 0;
    if (!c.out.empty()) {
        want |= EPOLLOUT;
    }
    if (!c.eof && !c.busy && c.out.empty() && !c.close_after_write && !c.framer.has_line()) {
        want |= EPOLLIN;
    }
    if (want != c.events) {
        epoll_event ev{};
        ev.events = want;
        ev.data.u64 = c.id;
        epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
        c.events = want;
    }
}

void IpcServer::close_client(uint64_t id) {
    auto it = clients_.find(id);
    if (it == clients_.end()) {
        return;
    }
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
    clients_.erase(it);  // closes the descriptor
}

void IpcServer::drain_completions() {
    uint64_t count = 0;
    ssize_t r = read(done_fd_.get(), &count, sizeof count);
    (void)r;
    std::deque<Done> ready;
    {
        std::lock_guard<std::mutex> lk(pool_mu_);
        ready.swap(done_);
    }
    for (Done &d : ready) {
        auto it = clients_.find(d.client_id);
        if (it == clients_.end()) {
            continue;  // the client left; the job (if any) is committed anyway
        }
        Client &c = *it->second;
        c.busy = false;
        c.out = std::move(d.reply);
        c.last_activity = Clock::now();
        process(c);
    }
}

void IpcServer::expire_idle() {
    auto now = Clock::now();
    std::vector<uint64_t> expired;
    for (auto &[id, c] : clients_) {
        if (!c->busy && now - c->last_activity >= settings_.client_idle_timeout) {
            expired.push_back(id);
        }
    }
    for (uint64_t id : expired) {
        close_client(id);
    }
}

void IpcServer::pool_main() noexcept {
    DbSlot slot;
    for (;;) {
        Task task;
        {
            std::unique_lock<std::mutex> lk(pool_mu_);
            pool_cv_.wait(lk, [this] { return pool_stop_ || !tasks_.empty(); });
            if (tasks_.empty()) {
                return;  // stopping, nothing left
            }
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        std::string reply = serve(slot, task);
        {
            std::lock_guard<std::mutex> lk(pool_mu_);
            done_.push_back({task.client_id, std::move(reply)});
            in_flight_--;
        }
        if (done_fd_) {
            uint64_t one = 1;
            ssize_t w = write(done_fd_.get(), &one, sizeof one);
            (void)w;
        }
    }
}

std::string IpcServer::serve(DbSlot &slot, const Task &task) noexcept {
    try {
        // One retry on a fresh connection: after a PostgreSQL restart the old
        // connection fails once. A retried enqueue is deduplicated.
        for (int round = 0; round < 2; round++) {
            if (!slot.conn) {
                if (Clock::now() < slot.next_attempt) {
                    return reply_error("database unavailable");
                }
                std::string err;
                Clock::time_point started = Clock::now();
                slot.conn =
                    db::connect(settings_.pg_conninfo, "relyloop-worker socket", &log_, &err);
                if (!slot.conn) {
                    bool slow = Clock::now() - started > std::chrono::seconds(1);
                    slot.next_attempt =
                        slow ? Clock::now() + std::chrono::milliseconds(500) : Clock::now();
                    if (!slot.failing) {
                        log_.error("db_unavailable", {{"message", "socket: " + err}});
                    }
                    slot.failing = true;
                    return reply_error("database unavailable");
                }
                slot.failing = false;
                try {
                    PgResult r = db::exec(slot.conn.get(), "SET statement_timeout = '5s'");
                } catch (const DbError &) {
                    slot.conn.reset();
                    continue;
                }
            }
            try {
                const Request &req = task.request;
                if (req.op == RequestOp::kPing) {
                    jobs::Counts c = jobs::counts(slot.conn.get());
                    return reply_ping(kVersion, c.queued, c.running);
                }
                if (req.op == RequestOp::kMetrics) {
                    return reply_metrics(metrics::render(slot.conn.get()));
                }
                jobs::EnqueueResult res = jobs::enqueue(slot.conn.get(), req.proposal_id);
                switch (res.status) {
                    case jobs::EnqueueResult::Status::kProposalNotFound:
                        return reply_error("proposal not found");
                    case jobs::EnqueueResult::Status::kCreated:
                    case jobs::EnqueueResult::Status::kDeduplicated: {
                        bool dedup = res.status == jobs::EnqueueResult::Status::kDeduplicated;
                        if (req.request_id.empty()) {
                            log_.info("job_enqueued", {{"job_id", res.job_id},
                                                       {"proposal_id", req.proposal_id},
                                                       {"deduplicated", dedup}});
                        } else {
                            log_.info("job_enqueued", {{"job_id", res.job_id},
                                                       {"proposal_id", req.proposal_id},
                                                       {"request_id", req.request_id},
                                                       {"deduplicated", dedup}});
                        }
                        if (!dedup && on_enqueued_) {
                            on_enqueued_();
                        }
                        return reply_enqueued(res.job_id, dedup);
                    }
                }
                return reply_error("internal error");
            } catch (const DbError &e) {
                if (classify_sqlstate(e.sqlstate()) == SqlStateClass::kForeignKeyViolation) {
                    return reply_error("proposal not found");
                }
                if (db::is_connection_error(e, slot.conn.get())) {
                    slot.conn.reset();
                    continue;
                }
                log_.error("ipc_db_error",
                           {{"proposal_id", task.request.proposal_id}, {"message", e.what()}});
                return reply_error("database error");
            }
        }
        return reply_error("database unavailable");
    } catch (const std::exception &e) {
        log_.error("ipc_error", {{"message", e.what()}});
        return reply_error("internal error");
    } catch (...) {
        log_.error("ipc_error", {{"message", "unexpected error"}});
        return reply_error("internal error");
    }
}

}  // namespace relyloop::worker
