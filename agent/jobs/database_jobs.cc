#include "agent/jobs/database_jobs.h"

#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/app/app_bucket.h"
#include "agent/app/env_file.h"
#include "agent/app/secrets_check.h"
#include "agent/common/status_macros.h"
#include "agent/database/app_queries.h"
#include "agent/database/database_restore.h"
#include "agent/database/pg_session.h"
#include "agent/database/target_ops.h"
#include "agent/database/verify.h"
#include "agent/inventory/inspector.h"
#include "agent/jobs/targets.h"
#include "agent/media/media_restore.h"
#include "agent/operations/redact.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

absl::StatusOr<OperationSpec> MakeRollbackJob(const std::string& request_id,
                                              const v1::RollbackOptions& opts, const JobEnv& env) {
  ASSIGN_OR_RETURN(NamedTarget named, ResolveNamedTarget(opts.target(), "rollback", env));
  OperationSpec spec;
  spec.kind = v1::OPERATION_KIND_ROLLBACK;
  spec.request_id = request_id;
  spec.target = absl::StrCat("database:", named.database);
  spec.fill_request = [opts](v1::Operation* op) {
    *op->mutable_rollback_options() = opts;
    RedactSensitive(op->mutable_rollback_options());
  };
  spec.steps = {{"swap", "swap the previous database back in"}};
  spec.work = [env, conninfo = named.conninfo, database = named.database,
               previous = opts.previous_database()](Operation* op) -> absl::Status {
    op->StepStarted("swap");
    ASSIGN_OR_RETURN(v1::RollbackResult result,
                     RollbackDatabase(conninfo, database, previous, env.env->Now()));
    op->StepFinished("swap", v1::STEP_STATE_SUCCEEDED,
                     absl::StrCat(result.restored_database(), " is live again as ", database));
    op->SetResult([&](v1::Operation* o) { *o->mutable_rollback_result() = result; });
    return absl::OkStatus();
  };
  return spec;
}

namespace {

absl::Status DropScratchDatabase(PgConnector* pg, const std::string& conninfo,
                                 const std::string& database) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgSession> admin, pg->Connect(conninfo, "postgres"));
  return TargetDatabases(admin.get()).Drop(database);
}

// The local files media_attachments rows reference, against the backup's
// media tree: present and readable; or, for a backup without one whose env
// keeps the media in object storage (S3_ENABLED) at an endpoint the agent
// may reach, against the bucket's keys (listed once).
v1::VerifyCheck CheckMediaFiles(PgSession* conn, const std::string& source_path,
                                const SourceOptions& source, const JobEnv& env) {
  v1::VerifyCheck c;
  c.set_name("media_files");
  auto opened = OpenBackup(source_path, source, InspectOptions(), env.runner);
  if (opened.ok() && !opened->manifest.media().conflict().empty()) {
    c.set_passed(false);
    c.set_message(
        absl::StrCat("a restore of the media would fail: ", opened->manifest.media().conflict()));
    return c;
  }
  std::string why_not;
  std::shared_ptr<const ObjectStore> bucket;
  if (opened.ok() && opened->manifest.media().files() == 0 && !opened->env_text.empty()) {
    bucket = AppBucketClient(ParseEnvFile(opened->env_text), "the backup's env file",
                             env.allowed_s3_endpoints, nullptr, &why_not);
  }
  absl::StatusOr<MediaListing> listing = absl::NotFoundError("no media");
  if (!opened.ok()) {
    listing = opened.status();
  } else if (bucket != nullptr) {
    auto objects = ListMediaObjects(*bucket, source.cancel);
    if (objects.ok()) {
      MediaListing keys;
      keys.root = bucket->Describe("");
      for (const auto& [key, object] : *objects) keys.files.insert(key);
      listing = std::move(keys);
    } else {
      listing = objects.status();
    }
  } else {
    listing = ListMediaFiles(source_path, opened->manifest.media(), source, env.runner);
  }
  if (!listing.ok()) {
    c.set_passed(absl::IsNotFound(listing.status()));
    c.set_message(absl::IsNotFound(listing.status())
                      ? absl::StrCat("the backup holds no media tree: nothing to check",
                                     why_not.empty() ? "" : " (" + why_not + ")")
                      : absl::StrCat("unable to read the media: ", listing.status().message()));
    return c;
  }
  auto table = MediaAttachmentsTableExists(conn);
  if (table.ok() && !*table) {
    c.set_passed(true);
    c.set_message(absl::StrCat("no media_attachments table: nothing references the ",
                               listing->files.size(), " media files"));
    return c;
  }
  auto has_remote = MediaAttachmentsHasRemoteUrl(conn);
  auto rows = LocalMediaReferences(conn, has_remote.ok() && *has_remote);
  if (!rows.ok()) {
    c.set_passed(false);
    c.set_message(absl::StrCat("unable to read media_attachments: ", rows.status().message()));
    return c;
  }
  int64_t checked = 0;
  std::vector<std::string> missing;
  for (const MediaReference& ref : *rows) {
    ++checked;
    const std::string path = absl::StrCat("media_attachments/files/", IdPartition(ref.id),
                                          "/original/", ref.file_file_name);
    if (listing->files.count(path) == 0) missing.push_back(path);
  }
  c.set_passed(missing.empty() && listing->unreadable.empty());
  if (c.passed()) {
    c.set_message(absl::StrCat(checked, " local media files referenced, all present and readable (",
                               listing->files.size(), " files in ", listing->root, ")"));
  } else {
    std::vector<std::string> shown = listing->unreadable;
    for (const std::string& m : missing) {
      if (shown.size() >= 5) break;
      shown.push_back(absl::StrCat(m, " missing"));
    }
    c.set_message(absl::StrCat(missing.size(), " of ", checked, " referenced files missing, ",
                               listing->unreadable.size(),
                               " unreadable: ", absl::StrJoin(shown, "; ")));
  }
  return c;
}

// The secrets check of verify (VerifyOptions.check_secrets): the expected
// backup's env file when there is one, else the runtime's; fills `out`.
v1::VerifyCheck CheckSecretsWithEnv(PgSession* conn, const std::optional<ScanSetup>& expected,
                                    const JobEnv& env, CancelToken* cancel, v1::SecretsCheck* out) {
  v1::VerifyCheck c;
  c.set_name("secrets");
  std::string text;
  std::string source;
  if (expected.has_value()) {
    SourceOptions options = expected->source;
    options.cancel = cancel;
    auto opened = OpenBackup(expected->path, options, InspectOptions(), env.runner);
    if (!opened.ok()) {
      c.set_message(
          absl::StrCat("unable to read the backup's env file: ", opened.status().message()));
      return c;
    }
    text = opened->env_text;
    if (!text.empty()) source = "the backup's env file";
  } else if (env.app_runtime() != nullptr && !env.app_runtime()->EnvFilePath().empty()) {
    const std::string path = env.app_runtime()->EnvFilePath();
    absl::StatusOr<std::string> host = env.env->ReadFile(path);
    text = host.ok() ? *host : std::string();
    source =
        absl::StrCat("the host's env file ", path,
                     host.ok() ? "" : absl::StrCat(" (unreadable: ", host.status().message(), ")"));
  }
  const ParsedEnvFile parsed = ParseEnvFile(text);
  auto checked = CheckAppSecrets(conn, source.empty() ? nullptr : &parsed, source);
  if (!checked.ok()) {
    c.set_message(absl::StrCat("unable to check the secrets: ", checked.status().message()));
    return c;
  }
  *out = *checked;
  c.set_passed(!out->mismatch());
  c.set_message(out->summary());
  return c;
}

}  // namespace

absl::StatusOr<OperationSpec> MakeVerifyJob(const std::string& request_id,
                                            const v1::VerifyOptions& opts,
                                            std::optional<ScanSetup> expected, const JobEnv& env) {
  ASSIGN_OR_RETURN(NamedTarget named, ResolveNamedTarget(opts.target(), "verify", env));
  const std::string conninfo = std::move(named.conninfo);
  const std::string database = std::move(named.database);
  if (opts.drop_scratch() && !absl::StartsWith(database, kScratchDatabasePrefix)) {
    return absl::InvalidArgumentError(absl::StrCat("drop_scratch: '", database,
                                                   "' is not a scratch database (",
                                                   kScratchDatabasePrefix, "*)"));
  }
  if (opts.check_media() && !expected.has_value()) {
    return absl::InvalidArgumentError("check_media needs the expected backup");
  }
  OperationSpec spec;
  spec.kind = v1::OPERATION_KIND_VERIFY;
  spec.request_id = request_id;
  spec.fill_request = [opts](v1::Operation* op) {
    *op->mutable_verify_options() = opts;
    RedactSensitive(op->mutable_verify_options());
  };
  spec.steps = {{"detect", "read the expected tables and rows from the dump"},
                {"verify", "run the checks"}};
  spec.work = [env, conninfo, database, expected, max_age = opts.max_age_days(),
               check_media = opts.check_media(), check_secrets = opts.check_secrets(),
               drop_scratch = opts.drop_scratch()](Operation* op) -> absl::Status {
    absl::Status status = [&]() -> absl::Status {
      VerifyExpectations expectations;
      op->StepStarted("detect");
      if (expected.has_value()) {
        ScanSetup setup = *expected;
        setup.source.cancel = &op->cancel_token();
        ASSIGN_OR_RETURN(v1::DumpInfo dump, DetectDumpInSource(setup.path, "", setup.source,
                                                               setup.options, env.runner));
        const std::string db =
            dump.kind() == v1::DUMP_KIND_CLUSTER ? dump.mastodon_database() : std::string();
        for (const v1::TableRowCount& t : dump.tables()) {
          if (t.database() == db) expectations.table_rows[t.table()] = t.rows();
        }
        expectations.schema_version = dump.schema_version();
        op->StepFinished("detect", v1::STEP_STATE_SUCCEEDED,
                         absl::StrCat(expectations.table_rows.size(), " tables expected"));
      } else {
        op->StepFinished("detect", v1::STEP_STATE_SKIPPED, "no dump given: structural checks only");
      }
      op->StepStarted("verify");
      ASSIGN_OR_RETURN(std::unique_ptr<PgSession> conn, env.pg->Connect(conninfo, database));
      ASSIGN_OR_RETURN(v1::VerifyResult result, VerifyDatabase(conn.get(), database, expectations));
      if (max_age > 0) {
        auto newest = NewestStatusAgeDays(conn.get());
        v1::VerifyCheck* c = result.add_checks();
        c->set_name("max_age");
        if (!newest.ok()) {
          c->set_passed(false);
          c->set_message(
              absl::StrCat("unable to read statuses.created_at: ", newest.status().message()));
        } else {
          const int64_t days = *newest;
          c->set_passed(days >= 0 && days <= max_age);
          c->set_message(days < 0 ? std::string("no statuses")
                                  : absl::StrCat("newest status is ", days, " days old (limit ",
                                                 max_age, ")"));
        }
        if (!c->passed()) result.set_passed(false);
      }
      if (check_media && expected.has_value()) {
        ScanSetup setup = *expected;
        setup.source.cancel = &op->cancel_token();
        v1::VerifyCheck c = CheckMediaFiles(conn.get(), setup.path, setup.source, env);
        if (!c.passed()) result.set_passed(false);
        *result.add_checks() = c;
      }
      if (check_secrets) {
        v1::VerifyCheck c = CheckSecretsWithEnv(conn.get(), expected, env, &op->cancel_token(),
                                                result.mutable_secrets_check());
        if (!c.passed()) result.set_passed(false);
        *result.add_checks() = c;
      }
      op->SetResult([&](v1::Operation* o) { *o->mutable_verify_result() = result; });
      if (!result.passed()) {
        return absl::DataLossError(absl::StrCat("verification of '", database, "' failed"));
      }
      op->StepFinished("verify", v1::STEP_STATE_SUCCEEDED, "every check passed");
      return absl::OkStatus();
    }();
    // A scratch copy goes whatever the checks found.
    if (drop_scratch) {
      absl::Status dropped = DropScratchDatabase(env.pg, conninfo, database);
      op->Log(dropped.ok() ? v1::SEVERITY_INFO : v1::SEVERITY_ERROR,
              dropped.ok() ? absl::StrCat("dropped the scratch database '", database, "'")
                           : std::string(dropped.message()),
              "verify");
      if (status.ok()) status = dropped;
    }
    return status;
  };
  return spec;
}

}  // namespace mastodon_restore
