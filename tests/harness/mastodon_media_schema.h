// The columns of Mastodon's schema that name media files (Paperclip's
// *_file_name, *_storage_schema_version, remote_url, domain), as tables
// the missing-media tests fill with rows of their own.
#ifndef MR_TESTS_HARNESS_MASTODON_MEDIA_SCHEMA_H_
#define MR_TESTS_HARNESS_MASTODON_MEDIA_SCHEMA_H_

namespace mastodon_restore {
namespace testing {

inline constexpr char kMastodonMediaTablesSql[] = R"sql(
  CREATE TABLE accounts (id bigint PRIMARY KEY, username varchar NOT NULL, domain varchar,
    avatar_file_name varchar, header_file_name varchar,
    avatar_storage_schema_version integer, header_storage_schema_version integer);
  CREATE TABLE media_attachments (id bigint PRIMARY KEY, status_id bigint,
    account_id bigint, file_file_name varchar, remote_url varchar NOT NULL DEFAULT '',
    file_storage_schema_version integer);
  CREATE TABLE custom_emojis (id bigint PRIMARY KEY, shortcode varchar NOT NULL,
    domain varchar, image_file_name varchar, image_storage_schema_version integer);
)sql";

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_MASTODON_MEDIA_SCHEMA_H_
