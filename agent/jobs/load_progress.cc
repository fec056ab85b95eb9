#include "agent/jobs/load_progress.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace mastodon_restore {

LoadProgressModel::Report LoadProgressModel::Update(const LoadProgress& p, int64_t data_done) {
  Report r;
  int64_t done = 0;
  if (!p.building) {
    r.phase = {"data", data_done, data_total_, "bytes"};
    if (data_total_ > 0) {
      const double f = std::min(1.0, static_cast<double>(data_done) / data_total_);
      done = static_cast<int64_t>(f * kDataShare * kWorkTotal);
    }
    r.message = absl::StrCat(p.toc_entry.empty() ? "" : p.toc_entry + ", ", p.rows, " rows");
  } else {
    if (build_start_ < 0) build_start_ = std::max(last_done_, int64_t{0});
    r.phase = {"build", p.builds_done, p.builds_total, "builds"};
    const double f =
        p.build_work_total > 0
            ? std::min(1.0, static_cast<double>(p.build_work_done) / p.build_work_total)
            : 0.0;
    done = build_start_ + static_cast<int64_t>(f * (kWorkTotal - build_start_));
    r.message = absl::StrCat("indexes, constraints, validation, ANALYZE; ", p.rows, " rows loaded");
  }
  // Builds left: below the total, whatever the rounding.
  if (!p.building || p.builds_done < p.builds_total) done = std::min(done, kWorkTotal - 1);
  last_done_ = std::max(last_done_, done);
  r.done = last_done_;
  return r;
}

}  // namespace mastodon_restore
