// EventScope (docs/worker.md, "Log"): a scoped event is the same line as the
// plain event with the identity fields spelled out, in the scope's key order.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "event_log.hpp"

using namespace relyloop::worker;

namespace {

// The lines written so far, each without its leading {"ts":"...", part.
std::vector<std::string> lines_of(FILE *f) {
    std::vector<std::string> out;
    fflush(f);
    rewind(f);
    char buf[4096];
    while (fgets(buf, sizeof buf, f) != nullptr) {
        std::string line(buf);
        size_t level = line.find(",\"level\"");
        out.push_back(level == std::string::npos ? line : line.substr(level));
    }
    return out;
}

}  // namespace

TEST(WorkerEventLog, ScopeWritesTheSameLineAsTheFieldList) {
    FILE *f = tmpfile();
    ASSERT_NE(f, nullptr);
    {
        EventLog log(f);
        std::string job = "j-1", proposal = "p-1", study, repo = "r-1", branch;
        EventScope ev(log);
        ev.bind(EventScope::kJob, job)
            .bind(EventScope::kProposal, proposal)
            .bind(EventScope::kStudy, study)
            .bind(EventScope::kRepo, repo)
            .bind(EventScope::kBranch, branch);

        log.warn("e1", {{"job_id", job},
                        {"proposal_id", proposal},
                        {"config_repo_id", repo},
                        {"message", "m"}});
        ev.warn("e1", EventScope::kIdsRepo, {{"message", "m"}});

        // Values bound before they are known are read at each event.
        study = "s-1";
        branch = "relyloop/study-s-1";
        log.info("e2", {{"job_id", job},
                        {"proposal_id", proposal},
                        {"study_id", study},
                        {"config_repo_id", repo},
                        {"branch", branch},
                        {"duration_ms", 5LL}});
        ev.info("e2", EventScope::kAll, {{"duration_ms", 5LL}});

        // A subset keeps the scope's order whatever the mask's spelling.
        log.error("e3", {{"job_id", job}, {"branch", branch}, {"n", 1}});
        ev.error("e3", EventScope::kBranch | EventScope::kJob, {{"n", 1}});

        ev.info("e4", EventScope::kIds);
        log.info("e4", {{"job_id", job}, {"proposal_id", proposal}});
    }
    std::vector<std::string> lines = lines_of(f);
    fclose(f);
    ASSERT_EQ(lines.size(), 8U);
    for (size_t i = 0; i < lines.size(); i += 2) {
        EXPECT_EQ(lines[i], lines[i + 1]) << "event pair " << i / 2;
    }
    EXPECT_EQ(lines[2],
              ",\"level\":\"info\",\"event\":\"e2\",\"job_id\":\"j-1\",\"proposal_id\":\"p-1\","
              "\"study_id\":\"s-1\",\"config_repo_id\":\"r-1\",\"branch\":\"relyloop/study-s-1\","
              "\"duration_ms\":5}\n");
}

TEST(WorkerEventLog, UnboundKeysAreLeftOut) {
    FILE *f = tmpfile();
    ASSERT_NE(f, nullptr);
    {
        EventLog log(f);
        std::string job = "j-2";
        EventScope ev(log);
        ev.bind(EventScope::kJob, job);
        ev.info("e", EventScope::kAll, {{"message", "x"}});
    }
    std::vector<std::string> lines = lines_of(f);
    fclose(f);
    ASSERT_EQ(lines.size(), 1U);
    EXPECT_EQ(lines[0],
              ",\"level\":\"info\",\"event\":\"e\",\"job_id\":\"j-2\",\"message\":\"x\"}\n");
}
