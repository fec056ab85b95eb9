// The load step's progress as a person and a controller see it: one bar and
// one ETA for the whole load, from the loader's two phases.
//
// Phase "data": the dump is read and its rows loaded (bytes of the dump, or
// of its stored file when compressed). Phase "build" (a parallel load, once
// the dump is read): the index, constraint, validation and ANALYZE jobs
// left, counted in builds and weighted by the bytes of their tables
// (LoadScheduler::BuildCounts).
//
// The whole load is counted in kWorkTotal units. While the data is read,
// the builds to come are estimated to cost as much again as the data (the
// share of a Mastodon-shaped load: half the time after the dump is read,
// see docs/database-restore.md), so the data phase fills the bar to
// kDataShare. Once building, the rest of the bar is the builds' weighted
// share done: the bar only grows, and it reaches kWorkTotal only when every
// build is done.
#ifndef MR_AGENT_JOBS_LOAD_PROGRESS_H_
#define MR_AGENT_JOBS_LOAD_PROGRESS_H_

#include <cstdint>
#include <string>

#include "agent/database/load_options.h"
#include "agent/operations/operation.h"

namespace mastodon_restore {

class LoadProgressModel {
 public:
  static constexpr int64_t kWorkTotal = 10000;
  static constexpr double kDataShare = 0.5;

  // `data_total`: the bytes the data phase counts to (0: unknown).
  explicit LoadProgressModel(int64_t data_total) : data_total_(data_total) {}

  struct Report {
    int64_t done = 0;  // of kWorkTotal "work"
    ProgressReporter::Phase phase;
    std::string message;
  };
  // The report for the loader's `p`; `data_done`: p's bytes in the unit of
  // `data_total` (the raw bytes for a compressed file).
  Report Update(const LoadProgress& p, int64_t data_done);

 private:
  const int64_t data_total_;
  int64_t last_done_ = 0;
  // Where the bar stood when the builds began.
  int64_t build_start_ = -1;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_LOAD_PROGRESS_H_
