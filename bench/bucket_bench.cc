// Bucket media benchmark: fills a bucket of a real S3-compatible server
// (the tests' s3rver, Signature V4 checked) with --files objects totalling
// about --mb megabytes (a Mastodon-shaped media tree, incompressible), then
// times, interleaved over --runs runs, copies of the whole tree into an
// empty local directory by:
//   - curl, one process fetching every object one after the other over one
//     reused connection (the simple sequential client: rclone --transfers 1);
//   - curl --parallel (8 transfers at once);
//   - the agent's media restore, one object at a time, and with its default
//     8 fetched at once (inventory included, staged then moved in);
// and the agent's second, unchanged run. Then the other way, the same tree
// from a local directory into an empty bucket: curl uploading one object
// after the other and 8 at once, the agent's media restore into a bucket
// writing one at a time and 8 at once, its unchanged second run, and the
// agent's copy from bucket to bucket on the same service (the service
// copies). Reports medians, objects/s, MB/s, the server's CPU seconds per
// copy and the benchmark's peak RSS.
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/common/args.h"
#include "agent/common/env.h"
#include "agent/common/s3_client.h"
#include "agent/common/subprocess.h"
#include "agent/inventory/inspector.h"
#include "agent/media/media_restore.h"
#include "bench/bench_common.h"
#include "tests/harness/test_s3.h"

namespace mastodon_restore {
namespace {

using bench::Median;
using testing::TestS3;

struct Case {
  std::string name;
  std::vector<double> seconds;
  std::vector<double> server_cpu;
  int64_t files = 0;
  int64_t bytes = 0;
};

int Run(const std::vector<std::string>& args) {
  const std::optional<bench::TreeBenchFlags> flags =
      bench::ParseTreeBenchFlags(args, "bucket_bench", "objects in the bucket",
                                 "where the server's data and the copies go", "/var/tmp");
  if (!flags.has_value()) return 2;
  const int files = flags->files, mb = flags->mb, runs = flags->runs;
  auto env = NewPosixEnv();
  auto runner = NewPosixCommandRunner();
  const std::string work = absl::StrCat(flags->work_dir, "/mr-bucket-bench");
  auto sh = [&](std::vector<std::string> argv) {
    const std::string what = argv.front();
    return bench::RunTool(runner.get(), "/", std::move(argv), what, "bucket_bench");
  };
  sh({"rm", "-rf", work});
  sh({"mkdir", "-p", work});
  auto s3 = TestS3::Start(work + "/s3");
  if (!s3.ok()) {
    std::fprintf(stderr, "bucket_bench: %s\n", std::string(s3.status().message()).c_str());
    return 1;
  }
  if (!(*s3)->CreateBucket("media").ok()) return 1;

  // The media tree, uploaded once.
  absl::Time t0 = absl::Now();
  std::mt19937_64 rng(42);
  const int64_t per_file = (static_cast<int64_t>(mb) << 20) / files;
  std::vector<std::string> keys;
  int64_t total = 0;
  for (int i = 0; i < files; ++i) {
    const int64_t size =
        per_file / 2 +
        static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(1, per_file)));
    std::string data(static_cast<size_t>(size), '\0');
    for (size_t k = 0; k + 8 <= data.size(); k += 8) {
      const uint64_t v = rng();
      std::memcpy(&data[k], &v, 8);
    }
    keys.push_back(absl::StrFormat("%s/files/%03d/%03d/%03d/original/%d.%s",
                                   i % 10 == 0 ? "accounts/avatars" : "media_attachments",
                                   i / 1000000, (i / 1000) % 1000, i % 1000, i,
                                   i % 10 == 0 ? "png" : "jpg"));
    absl::Status put = (*s3)->Put("media", keys.back(), data);
    if (!put.ok()) {
      std::fprintf(stderr, "bucket_bench: %s\n", std::string(put.message()).c_str());
      return 1;
    }
    total += size;
  }
  std::fprintf(stderr, "bucket_bench: %d objects (%.0f MB) uploaded in %s\n", files, total / 1e6,
               absl::FormatDuration(absl::Now() - t0).c_str());

  // curl's configurations: the credentials in the file, not on the command
  // line; `options` ("create-dirs"), then each object's lines.
  auto curl_config = [&](const std::string& path, const std::string& options,
                         const std::function<std::string(const std::string&)>& per_object) {
    std::ofstream out(path);
    out << "aws-sigv4 = \"aws:amz:us-east-1:s3\"\n"
        << "user = \"" << TestS3::kAccessKeyId << ":" << TestS3::kSecret << "\"\n"
        << "header = \"x-amz-content-sha256: UNSIGNED-PAYLOAD\"\n"
        << "fail\nsilent\nshow-error\n"
        << options;
    for (const std::string& key : keys) out << per_object(key);
  };
  // Every object to its file.
  const std::string config = work + "/curl.config";
  curl_config(config, "create-dirs\n", [&](const std::string& key) {
    return absl::StrCat("url = \"", (*s3)->endpoint(), "/media/", S3UriEncode(key, true),
                        "\"\noutput = \"", work, "/curl-out/", key, "\"\n");
  });
  const S3Options options = (*s3)->Options("media");
  const pid_t server = (*s3)->pid();
  // One timed copy: `copy` fills the case's counts; the server's CPU
  // (utime and stime, fields 14 and 15 of /proc/PID/stat) is measured
  // around it.
  auto measure = [&](Case* c, const std::function<bool()>& copy) {
    ::sync();
    const bench::ProcStat before = bench::ReadProcStat(server);
    const absl::Time start = absl::Now();
    if (!copy()) {
      std::fprintf(stderr, "bucket_bench: %s failed\n", c->name.c_str());
      return false;
    }
    c->seconds.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    const bench::ProcStat after = bench::ReadProcStat(server);
    c->server_cpu.push_back(
        bench::TicksToSeconds(after.Get(11) + after.Get(12) - before.Get(11) - before.Get(12)));
    return true;
  };
  // curl with `config`, 8 transfers at once when `parallel`.
  auto curl = [&](Case* c, const std::string& config, bool parallel) {
    std::vector<std::string> argv = {"curl", "--config", config};
    if (parallel) argv.insert(argv.end(), {"--parallel", "--parallel-max", "8"});
    c->files = files;
    c->bytes = total;
    return sh(argv);
  };
  // The agent's media restore, its inventory included.
  auto agent = [&](Case* c, MediaRestoreOptions o) {
    auto manifest = InspectBackup(o.source_path, o.source, InspectOptions(), runner.get());
    if (!manifest.ok()) return false;
    o.inventory = manifest->media();
    auto restored = RestoreMedia(o, runner.get(), env.get());
    if (!restored.ok()) {
      std::fprintf(stderr, "%s\n", std::string(restored.status().message()).c_str());
      return false;
    }
    if (c != nullptr) {
      c->files = restored->files_written + restored->files_skipped;
      c->bytes = restored->bytes_written + restored->bytes_skipped;
    }
    return true;
  };
  auto from_bucket = [&](int parallel) {
    MediaRestoreOptions o;
    o.source_path = "s3://media/";
    o.source.bucket = std::shared_ptr<const ObjectStore>(NewS3Client(options)->release());
    o.source.bucket_parallel = parallel;
    return o;
  };
  auto named = [](std::vector<const char*> names) {
    std::vector<Case> out(names.size());
    for (size_t i = 0; i < names.size(); ++i) out[i].name = names[i];
    return out;
  };

  std::vector<Case> cases =
      named({"curl, one object after the other (one connection)", "curl --parallel (8 at once)",
             "agent, one object after the other", "agent, 8 fetched at once (default)",
             "agent, second unchanged run"});
  for (int run = 0; run < runs; ++run) {
    for (size_t c = 0; c < cases.size(); ++c) {
      if (c != 4) sh({"rm", "-rf", work + "/curl-out", work + "/agent-out"});
      const bool ok = measure(&cases[c], [&] {
        if (c <= 1) return curl(&cases[c], config, c == 1);
        MediaRestoreOptions o = from_bucket(c == 2 ? 1 : 8);
        o.target_dir = work + "/agent-out/system";
        o.operation_id = absl::StrCat("op-bench-", run);
        return agent(&cases[c], o);
      });
      if (!ok) return 1;
    }
  }

  // The other way: the tree as the agent wrote it, into an empty bucket
  // ("upload", emptied between runs by removing its directory from the
  // server's store: a DELETE per object would cost more than the copies).
  const std::string local = work + "/local";
  {
    MediaRestoreOptions o = from_bucket(8);
    o.target_dir = local + "/system";
    o.operation_id = "op-bench-local";
    if (!agent(nullptr, o)) return 1;
  }
  // Every file to its object.
  const std::string upload_config = work + "/curl-upload.config";
  curl_config(upload_config, "output = /dev/null\n", [&](const std::string& key) {
    return absl::StrCat("upload-file = \"", local, "/system/", key, "\"\nurl = \"",
                        (*s3)->endpoint(), "/upload/", S3UriEncode(key, true), "\"\n");
  });
  std::vector<Case> up =
      named({"curl, one object after the other (one connection)", "curl --parallel (8 at once)",
             "agent, one object after the other", "agent, 8 written at once (default)",
             "agent, second unchanged run", "agent, bucket to bucket (the service copies)"});
  for (int run = 0; run < runs; ++run) {
    for (size_t c = 0; c < up.size(); ++c) {
      if (c != 4) {
        sh({"rm", "-rf", work + "/s3/data/upload"});
        if (!(*s3)->CreateBucket("upload").ok()) return 1;
      }
      const bool ok = measure(&up[c], [&] {
        if (c <= 1) return curl(&up[c], upload_config, c == 1);
        MediaRestoreOptions o;
        if (c == 5) {
          o = from_bucket(8);
        } else {
          o.source_path = local;
          o.source.allowed_roots = {local};
        }
        o.target_bucket =
            std::shared_ptr<const ObjectStore>(NewS3Client((*s3)->Options("upload"))->release());
        o.upload_parallel = c == 2 ? 1 : 8;
        return agent(&up[c], o);
      });
      if (!ok) return 1;
    }
  }

  struct rusage usage;
  ::getrusage(RUSAGE_SELF, &usage);
  std::string report = absl::StrFormat(
      "# Bucket media benchmark, %s\n\nCommand: `bucket_bench --files %d --mb %d --runs %d`: "
      "%d objects, %.0f MB, between a bucket of the tests' S3-compatible server (s3rver 4.0.4 on "
      "Node.js, Signature V4 checked, loopback) and a local directory; medians of "
      "interleaved runs.\n",
      absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()), files, mb, runs, files,
      total / 1e6);
  auto table = [&](const std::string& title, const std::vector<Case>& rows) {
    const double base = Median(rows[0].seconds);
    absl::StrAppend(&report, "\n## ", title,
                    "\n\n| case | median | objects/s | MB/s | vs curl sequential | server CPU |\n"
                    "|---|---:|---:|---:|---:|---:|\n");
    for (const Case& c : rows) {
      const double m = Median(c.seconds);
      absl::StrAppendFormat(&report, "| %s | %.2f s | %.0f | %.1f | %.2fx | %.1f s |\n", c.name, m,
                            c.files / m, c.bytes / 1e6 / m, base / m, Median(c.server_cpu));
    }
  };
  table("From the bucket into an empty directory", cases);
  table("From the directory into an empty bucket", up);
  absl::StrAppendFormat(&report,
                        "\nPeak RSS of the benchmark process (the agent's side): %.1f MB\n",
                        usage.ru_maxrss / 1024.0);
  std::fputs(report.c_str(), stdout);
  if (!flags->output.empty()) std::ofstream(flags->output) << report;
  s3->reset();
  sh({"rm", "-rf", work});
  return 0;
}

}  // namespace
}  // namespace mastodon_restore

int main(int argc, char** argv) {
  return mastodon_restore::Run(std::vector<std::string>(argv + 1, argv + argc));
}
