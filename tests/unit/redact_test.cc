#include "agent/operations/redact.h"

#include <gtest/gtest.h>

#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

TEST(RedactTest, RemovesEverySensitiveFieldAndKeepsTheRest) {
  v1::Operation op;
  v1::RestoreOptions* o = op.mutable_restore_options();
  o->mutable_source()->set_path("/var/backups/mastodon/b.zip");
  o->mutable_source()->mutable_passphrase()->set_value("canary-zip-password");
  o->mutable_target()->set_conninfo("host=db password=canary-db");
  o->mutable_target()->set_database("mastodon_production");
  o->set_db_only(true);
  RedactSensitive(&op);
  const std::string text = op.DebugString();
  EXPECT_EQ(text.find("canary"), std::string::npos) << text;
  EXPECT_EQ(o->source().path(), "/var/backups/mastodon/b.zip");
  EXPECT_EQ(o->target().database(), "mastodon_production");
  EXPECT_TRUE(o->db_only());

  v1::BackupSource by_file;
  by_file.mutable_passphrase()->set_file("/var/backups/mastodon/pass.txt");
  RedactSensitive(&by_file);
  EXPECT_EQ(by_file.passphrase().file(), "/var/backups/mastodon/pass.txt");  // not a secret
}

}  // namespace
}  // namespace mastodon_restore
