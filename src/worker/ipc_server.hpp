#pragma once

// The worker's Unix socket (docs/worker.md, "The socket protocol"): one I/O
// thread runs an epoll loop over
// non-blocking fds (the listener, every client, a wake-up eventfd and the
// daemon's signalfd); requests that need PostgreSQL (enqueue, ping) go to a
// small fixed pool of DB threads, each with its own connection, and their
// replies come back through the eventfd. A slow or silent client never
// blocks another, no thread is created per connection, and each connection
// has at most one request in flight and one reply buffered, so memory per
// client is bounded by the line limit.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/raii.hpp"
#include "event_log.hpp"
#include "protocol.hpp"
#include "settings.hpp"

namespace relyloop::worker {

class IpcServer {
  public:
    // Clients beyond this are answered with an error and closed.
    static constexpr size_t kMaxClients = 1024;
    // DB threads serving enqueue and ping.
    static constexpr int kDbThreads = 4;

    IpcServer(const Settings &settings, EventLog &log);
    ~IpcServer();
    IpcServer(const IpcServer &) = delete;
    IpcServer &operator=(const IpcServer &) = delete;

    // Creates the socket: a stale socket file nobody answers on is removed,
    // a live one (another daemon) is an error; the new socket is mode 0660.
    [[nodiscard]] bool open(std::string *error);

    // Called after each newly created job is committed.
    void set_on_enqueued(std::function<void()> fn) { on_enqueued_ = std::move(fn); }

    void start_pool();

    // The event loop, on the calling thread, until done() returns true
    // (checked at least every 250 ms). When `extra_fd` is readable,
    // on_extra() runs on the loop thread.
    void run(int extra_fd, const std::function<void()> &on_extra,
             const std::function<bool()> &done);

    // Closes the listener and removes the socket file; connected clients are
    // still answered (requests get "worker stopping").
    void stop_accepting() noexcept;

    // No request is with the DB threads and every reply has been handed to
    // its client.
    [[nodiscard]] bool idle() const noexcept;

    // Closes every client, stops the DB threads, removes the socket file.
    void shutdown() noexcept;

  private:
    struct Client {
        Fd fd;
        uint64_t id = 0;
        LineFramer framer;
        std::string out;
        bool busy = false;  // a request is with the DB pool
        bool eof = false;   // the peer finished sending
        bool close_after_write = false;
        uint32_t events = 0;  // the epoll interest registered
        std::chrono::steady_clock::time_point last_activity;
    };
    struct Task {
        uint64_t client_id;
        Request request;
    };
    struct Done {
        uint64_t client_id;
        std::string reply;
    };

    void accept_clients();
    void on_client_event(Client &c, uint32_t events);
    void read_client(Client &c);
    void process(Client &c);
    void flush(Client &c);
    void update_interest(Client &c);
    void close_client(uint64_t id);
    void drain_completions();
    void expire_idle();

    void pool_main() noexcept;
    struct DbSlot;
    std::string serve(DbSlot &slot, const Task &task) noexcept;

    const Settings &settings_;
    EventLog &log_;
    std::function<void()> on_enqueued_;

    Fd listen_fd_;
    Fd epoll_fd_;
    Fd done_fd_;  // eventfd: DB pool → loop
    dev_t sock_dev_ = 0;
    ino_t sock_ino_ = 0;
    bool socket_created_ = false;
    bool accepting_ = false;
    bool listener_paused_ = false;
    std::chrono::steady_clock::time_point listener_resume_;

    uint64_t next_id_ = 16;
    std::map<uint64_t, std::unique_ptr<Client>> clients_;
    std::vector<uint64_t> posted_;  // clients to process again next iteration

    mutable std::mutex pool_mu_;
    std::condition_variable pool_cv_;
    std::deque<Task> tasks_;
    std::deque<Done> done_;
    size_t in_flight_ = 0;
    bool pool_stop_ = false;
    std::vector<std::thread> pool_;
};

}  // namespace relyloop::worker
