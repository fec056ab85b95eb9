#include "bench/mastodon_data.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace bench {
namespace {

// Deterministic pseudo-random integer in [0, n) from an expression.
std::string Pick(const std::string& expr, int64_t n) {
  return absl::StrCat("(abs(hashint8((", expr, ")::bigint)::bigint) % ", std::max<int64_t>(n, 1),
                      ")");
}

// Tables, in creation order, with their fill statements. {N_ACC}, {N_ST},
// ... are replaced by the row counts of the scale.
struct Table {
  const char* name;
  const char* ddl;
  const char* fill;
};

const Table kTables[] = {
    {"accounts",
     R"(CREATE SEQUENCE accounts_id_seq;
CREATE TABLE accounts (
  id bigint DEFAULT timestamp_id('accounts') NOT NULL PRIMARY KEY,
  username character varying DEFAULT '' NOT NULL,
  domain character varying,
  private_key text,
  public_key text DEFAULT '' NOT NULL,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  note text DEFAULT '' NOT NULL,
  display_name character varying DEFAULT '' NOT NULL,
  uri character varying DEFAULT '' NOT NULL,
  url character varying,
  avatar_file_name character varying,
  avatar_content_type character varying,
  avatar_file_size integer,
  avatar_updated_at timestamp without time zone,
  header_file_name character varying,
  header_content_type character varying,
  header_file_size integer,
  header_updated_at timestamp without time zone,
  avatar_remote_url character varying,
  locked boolean DEFAULT false NOT NULL,
  header_remote_url character varying DEFAULT '' NOT NULL,
  last_webfingered_at timestamp without time zone,
  inbox_url character varying DEFAULT '' NOT NULL,
  outbox_url character varying DEFAULT '' NOT NULL,
  shared_inbox_url character varying DEFAULT '' NOT NULL,
  followers_url character varying DEFAULT '' NOT NULL,
  following_url character varying DEFAULT '' NOT NULL,
  protocol integer DEFAULT 0 NOT NULL,
  memorial boolean DEFAULT false NOT NULL,
  moved_to_account_id bigint,
  featured_collection_url character varying,
  collections_url character varying,
  fields jsonb,
  actor_type character varying,
  discoverable boolean,
  also_known_as character varying[],
  silenced_at timestamp without time zone,
  suspended_at timestamp without time zone,
  hide_collections boolean,
  avatar_storage_schema_version integer,
  header_storage_schema_version integer,
  avatar_description character varying DEFAULT '' NOT NULL,
  header_description character varying DEFAULT '' NOT NULL,
  sensitized_at timestamp without time zone,
  suspension_origin integer,
  trendable boolean,
  reviewed_at timestamp without time zone,
  requested_review_at timestamp without time zone,
  indexable boolean DEFAULT false NOT NULL,
  attribution_domains character varying[] DEFAULT '{}'::character varying[],
  id_scheme integer DEFAULT 1,
  feature_approval_policy integer DEFAULT 0 NOT NULL,
  show_featured boolean DEFAULT true NOT NULL,
  show_media boolean DEFAULT true NOT NULL,
  show_media_replies boolean DEFAULT true NOT NULL,
  featured_collection_id bigint
);
ALTER SEQUENCE accounts_id_seq OWNED BY accounts.id;)",
     R"(INSERT INTO accounts (id, username, domain, private_key, public_key, created_at,
  updated_at, note, display_name, uri, url, avatar_file_name, avatar_content_type,
  avatar_file_size, avatar_updated_at, avatar_remote_url, inbox_url, outbox_url,
  shared_inbox_url, followers_url, following_url, fields, actor_type, discoverable,
  avatar_storage_schema_version, last_webfingered_at, moved_to_account_id, suspended_at)
SELECT g, w.w || '_' || g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'host' || {PICK_HOST} || '.example' END,
  CASE WHEN g % 10 = 0 THEN '-----BEGIN RSA PRIVATE KEY-----' || repeat(md5(g::text || 'k'), 6) ELSE NULL END,
  E'-----BEGIN PUBLIC KEY-----\n' || md5(g::text) || md5((g + 1)::text) || E'\n' ||
    md5((g * 3)::text) || md5((g * 5)::text) || E'\n' || md5((g * 7)::text) ||
    md5((g * 11)::text) || E'\n' || md5((g * 13)::text) || E'\n-----END PUBLIC KEY-----\n',
  '2020-01-01'::timestamp + g * interval '3 minutes', '2024-01-01'::timestamp + g * interval '1 minute',
  s.t, initcap(w.w) || ' ' || initcap(w2.w),
  'https://host' || {PICK_HOST} || '.example/users/' || w.w || '_' || g,
  'https://host' || {PICK_HOST} || '.example/@' || w.w || '_' || g,
  md5(g::text || 'a') || '.png', 'image/png', 10000 + g % 50000, '2024-02-01'::timestamp + g * interval '1 second',
  'https://cdn.host' || {PICK_HOST} || '.example/accounts/avatars/' || g || '/original/' || md5(g::text) || '.png',
  'https://host' || {PICK_HOST} || '.example/users/' || w.w || '/inbox',
  'https://host' || {PICK_HOST} || '.example/users/' || w.w || '/outbox',
  'https://host' || {PICK_HOST} || '.example/inbox',
  'https://host' || {PICK_HOST} || '.example/users/' || w.w || '/followers',
  'https://host' || {PICK_HOST} || '.example/users/' || w.w || '/following',
  CASE WHEN g % 4 = 0 THEN jsonb_build_array(jsonb_build_object('name', w2.w, 'value', s.t)) END,
  CASE WHEN g % 50 = 0 THEN 'Service' ELSE 'Person' END, g % 3 = 0, 1,
  '2025-01-01'::timestamp + g * interval '1 second',
  CASE WHEN g % 500 = 0 THEN g - 1 END, CASE WHEN g % 1000 = 7 THEN '2025-06-01'::timestamp END
FROM generate_series(1, {N_ACC}) g
JOIN bench_words w ON w.i = {PICK_W1}
JOIN bench_words w2 ON w2.i = {PICK_W2}
JOIN bench_sentences s ON s.i = {PICK_S1})"},
    {"conversations",
     R"(CREATE TABLE conversations (
  id bigint NOT NULL PRIMARY KEY,
  uri character varying,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  parent_status_id bigint,
  parent_account_id bigint
);
CREATE SEQUENCE conversations_id_seq OWNED BY conversations.id;
ALTER TABLE conversations ALTER COLUMN id SET DEFAULT nextval('conversations_id_seq'::regclass);)",
     R"(INSERT INTO conversations
SELECT g, CASE WHEN g % 5 = 0 THEN 'tag:host' || {PICK_HOST} || '.example,2024-01-01:objectId=' || g || ':objectType=Conversation' END,
  '2022-01-01'::timestamp + g * interval '2 minutes', '2022-01-01'::timestamp + g * interval '2 minutes',
  CASE WHEN g % 3 = 0 THEN g END, CASE WHEN g % 3 = 0 THEN 1 + {PICK_ACC} END
FROM generate_series(1, {N_CONV}) g)"},
    {"favourites",
     R"(CREATE TABLE favourites (
  id bigint NOT NULL PRIMARY KEY,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  account_id bigint NOT NULL,
  status_id bigint NOT NULL,
  uri character varying
);
CREATE SEQUENCE favourites_id_seq OWNED BY favourites.id;
ALTER TABLE favourites ALTER COLUMN id SET DEFAULT nextval('favourites_id_seq'::regclass);)",
     R"(INSERT INTO favourites
SELECT g, '2022-01-01'::timestamp + g * interval '7 seconds', '2022-01-01'::timestamp + g * interval '7 seconds',
  1 + (g - 1) % {N_ACC}, 1 + (((g - 1) / {N_ACC}) * 7919 + ((g - 1) % {N_ACC}) * 13) % {N_ST},
  CASE WHEN g % 2 = 0 THEN 'https://host' || {PICK_HOST} || '.example/' || md5(g::text) END
FROM generate_series(1, {N_FAV}) g)"},
    {"follows",
     R"(CREATE TABLE follows (
  id bigint NOT NULL PRIMARY KEY,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  account_id bigint NOT NULL,
  target_account_id bigint NOT NULL,
  show_reblogs boolean DEFAULT true NOT NULL,
  uri character varying,
  notify boolean DEFAULT false NOT NULL,
  languages character varying[]
);
CREATE SEQUENCE follows_id_seq OWNED BY follows.id;
ALTER TABLE follows ALTER COLUMN id SET DEFAULT nextval('follows_id_seq'::regclass);)",
     R"(INSERT INTO follows
SELECT g, '2021-01-01'::timestamp + g * interval '11 seconds', '2021-01-01'::timestamp + g * interval '11 seconds',
  1 + (g - 1) % {N_ACC}, 1 + (((g - 1) % {N_ACC}) + 1 + ((g - 1) / {N_ACC}) * 997) % {N_ACC},
  g % 9 <> 0, 'https://host' || {PICK_HOST} || '.example/' || md5(g::text || 'f'), g % 17 = 0,
  CASE WHEN g % 23 = 0 THEN '{en,de}'::character varying[] END
FROM generate_series(1, {N_FOL}) g)"},
    {"media_attachments",
     R"(CREATE TABLE media_attachments (
  id bigint DEFAULT timestamp_id('media_attachments') NOT NULL PRIMARY KEY,
  status_id bigint,
  file_file_name character varying,
  file_content_type character varying,
  file_file_size integer,
  file_updated_at timestamp without time zone,
  remote_url character varying DEFAULT '' NOT NULL,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  shortcode character varying,
  type integer DEFAULT 0 NOT NULL,
  file_meta json,
  account_id bigint,
  description text,
  scheduled_status_id bigint,
  blurhash character varying,
  processing integer,
  file_storage_schema_version integer,
  thumbnail_file_name character varying,
  thumbnail_content_type character varying,
  thumbnail_file_size integer,
  thumbnail_updated_at timestamp without time zone,
  thumbnail_remote_url character varying,
  thumbnail_storage_schema_version integer
);
CREATE SEQUENCE media_attachments_id_seq OWNED BY media_attachments.id;)",
     R"(INSERT INTO media_attachments (id, status_id, file_file_name, file_content_type,
  file_file_size, file_updated_at, remote_url, created_at, updated_at, shortcode, type,
  file_meta, account_id, description, blurhash, processing, file_storage_schema_version)
SELECT g, CASE WHEN g % 20 <> 0 THEN 1 + {PICK_ST} END, md5(g::text) || '.jpg', 'image/jpeg',
  20000 + g % 900000, '2023-01-01'::timestamp + g * interval '9 seconds',
  CASE WHEN g % 4 = 0 THEN '' ELSE 'https://files.host' || {PICK_HOST} || '.example/media/' || md5(g::text || 'm') || '.jpg' END,
  '2023-01-01'::timestamp + g * interval '9 seconds', '2023-01-01'::timestamp + g * interval '9 seconds',
  CASE WHEN g % 4 = 0 THEN substr(md5(g::text || 's'), 1, 20) END, g % 3,
  json_build_object('original', json_build_object('width', 400 + g % 1200, 'height', 300 + g % 900,
    'size', (400 + g % 1200) || 'x' || (300 + g % 900), 'aspect', 1.3333), 'small',
    json_build_object('width', 400, 'height', 300)),
  1 + {PICK_ACC}, CASE WHEN g % 3 = 0 THEN s.t END,
  'U' || substr(md5(g::text || 'b'), 1, 27), 2, 1
FROM generate_series(1, {N_MA}) g
JOIN bench_sentences s ON s.i = {PICK_S1})"},
    {"notifications",
     R"(CREATE TABLE notifications (
  id bigint NOT NULL PRIMARY KEY,
  activity_id bigint NOT NULL,
  activity_type character varying NOT NULL,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  account_id bigint NOT NULL,
  from_account_id bigint NOT NULL,
  type character varying,
  filtered boolean DEFAULT false NOT NULL,
  group_key character varying
);
CREATE SEQUENCE notifications_id_seq OWNED BY notifications.id;
ALTER TABLE notifications ALTER COLUMN id SET DEFAULT nextval('notifications_id_seq'::regclass);)",
     R"(INSERT INTO notifications
SELECT g, 1 + {PICK_ST}, (ARRAY['Favourite','Follow','Mention','Status','Poll'])[1 + g % 5],
  '2023-06-01'::timestamp + g * interval '5 seconds', '2023-06-01'::timestamp + g * interval '5 seconds',
  1 + {PICK_ACC}, 1 + {PICK_ACC2},
  (ARRAY['favourite','follow','mention','status','poll'])[1 + g % 5], g % 41 = 0,
  CASE WHEN g % 5 = 0 THEN 'favourite-' || (g / 7) END
FROM generate_series(1, {N_NOT}) g)"},
    {"preview_cards",
     R"(CREATE TABLE preview_cards (
  id bigint NOT NULL PRIMARY KEY,
  url character varying DEFAULT '' NOT NULL,
  title character varying DEFAULT '' NOT NULL,
  description character varying DEFAULT '' NOT NULL,
  image_file_name character varying,
  image_content_type character varying,
  image_file_size integer,
  image_updated_at timestamp without time zone,
  type integer DEFAULT 0 NOT NULL,
  html text DEFAULT '' NOT NULL,
  author_name character varying DEFAULT '' NOT NULL,
  author_url character varying DEFAULT '' NOT NULL,
  provider_name character varying DEFAULT '' NOT NULL,
  provider_url character varying DEFAULT '' NOT NULL,
  width integer DEFAULT 0 NOT NULL,
  height integer DEFAULT 0 NOT NULL,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  embed_url character varying DEFAULT '' NOT NULL,
  image_storage_schema_version integer,
  blurhash character varying,
  language character varying,
  max_score double precision,
  max_score_at timestamp without time zone,
  trendable boolean,
  link_type integer,
  published_at timestamp without time zone,
  image_description character varying DEFAULT '' NOT NULL,
  author_account_id bigint,
  unverified_author_account_id bigint
);
CREATE SEQUENCE preview_cards_id_seq OWNED BY preview_cards.id;
ALTER TABLE preview_cards ALTER COLUMN id SET DEFAULT nextval('preview_cards_id_seq'::regclass);)",
     R"(INSERT INTO preview_cards (id, url, title, description, image_file_name, image_content_type,
  image_file_size, image_updated_at, type, html, provider_name, provider_url, width, height,
  created_at, updated_at, blurhash, language, max_score, trendable, link_type, published_at)
SELECT g, 'https://news' || {PICK_HOST} || '.example/articles/' || g || '-' || replace(s.t, ' ', '-'),
  initcap(s2.t), s.t || ' ' || s2.t, md5(g::text) || '.jpg', 'image/jpeg', 30000 + g % 70000,
  '2024-01-01'::timestamp + g * interval '13 seconds', g % 2,
  CASE WHEN g % 10 = 0 THEN '<iframe src="https://video.example/embed/' || md5(g::text) || '"></iframe>' ELSE '' END,
  'News ' || {PICK_HOST}, 'https://news' || {PICK_HOST} || '.example', 400, 200 + g % 200,
  '2024-01-01'::timestamp + g * interval '13 seconds', '2024-01-01'::timestamp + g * interval '13 seconds',
  'L' || substr(md5(g::text || 'p'), 1, 27), 'en', CASE WHEN g % 50 = 0 THEN (g % 1000) / 10.0 END,
  g % 7 = 0, 1, '2024-01-01'::timestamp + g * interval '13 seconds'
FROM generate_series(1, {N_PC}) g
JOIN bench_sentences s ON s.i = {PICK_S1}
JOIN bench_sentences s2 ON s2.i = {PICK_S2})"},
    {"schema_migrations",
     R"(CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);
CREATE TABLE ar_internal_metadata (
  key character varying NOT NULL PRIMARY KEY,
  value character varying,
  created_at timestamp(6) without time zone NOT NULL,
  updated_at timestamp(6) without time zone NOT NULL
);)",
     R"(INSERT INTO schema_migrations
SELECT to_char('2016-02-22'::timestamp + g * interval '5 days 3 hours 7 minutes 11 seconds', 'YYYYMMDDHH24MISS')
FROM generate_series(1, 589) g;
INSERT INTO ar_internal_metadata VALUES ('environment', 'production', now(), now()),
  ('schema_sha1', md5('schema'), now(), now()))"},
    {"statuses",
     R"(CREATE TABLE statuses (
  id bigint DEFAULT timestamp_id('statuses') NOT NULL PRIMARY KEY,
  uri character varying,
  text text DEFAULT '' NOT NULL,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  in_reply_to_id bigint,
  reblog_of_id bigint,
  url character varying,
  sensitive boolean DEFAULT false NOT NULL,
  visibility integer DEFAULT 0 NOT NULL,
  spoiler_text text DEFAULT '' NOT NULL,
  reply boolean DEFAULT false NOT NULL,
  language character varying,
  conversation_id bigint,
  local boolean,
  account_id bigint NOT NULL,
  application_id bigint,
  in_reply_to_account_id bigint,
  poll_id bigint,
  deleted_at timestamp without time zone,
  edited_at timestamp without time zone,
  trendable boolean,
  ordered_media_attachment_ids bigint[],
  fetched_replies_at timestamp without time zone,
  quote_approval_policy integer DEFAULT 0 NOT NULL
);
CREATE SEQUENCE statuses_id_seq OWNED BY statuses.id;)",
     R"(INSERT INTO statuses (id, uri, text, created_at, updated_at, in_reply_to_id, reblog_of_id,
  url, sensitive, visibility, spoiler_text, reply, language, conversation_id, local, account_id,
  application_id, in_reply_to_account_id, deleted_at, edited_at, trendable,
  ordered_media_attachment_ids)
SELECT g, 'https://host' || {PICK_HOST} || '.example/users/u' || (1 + {PICK_ACC}) || '/statuses/' || g,
  CASE WHEN g % 10 = 3 THEN '' ELSE '<p>' || s.t || ' ' || s2.t || '</p>' END,
  '2022-01-01'::timestamp + g * interval '20 seconds', '2022-01-01'::timestamp + g * interval '20 seconds',
  CASE WHEN g % 5 = 1 AND g > 50 THEN g - 1 - g % 50 END,
  CASE WHEN g % 10 = 3 AND g > 50 THEN g - 1 - g % 47 END,
  CASE WHEN g % 10 <> 3 THEN 'https://host' || {PICK_HOST} || '.example/@u/' || g END,
  g % 31 = 0, g % 4, CASE WHEN g % 31 = 0 THEN s2.t ELSE '' END, g % 5 = 1,
  (ARRAY['en','de','fr','ja','es'])[1 + g % 5], 1 + {PICK_CONV}, g % 10 = 0, 1 + {PICK_ACC},
  CASE WHEN g % 10 = 0 THEN 1 END, CASE WHEN g % 5 = 1 THEN 1 + {PICK_ACC2} END,
  CASE WHEN g % 97 = 0 THEN '2025-01-01'::timestamp + g * interval '1 second' END,
  CASE WHEN g % 53 = 0 THEN '2025-02-01'::timestamp + g * interval '1 second' END,
  CASE WHEN g % 13 = 0 THEN true END,
  CASE WHEN g % 4 = 0 THEN ARRAY[1 + {PICK_MA}] END
FROM generate_series(1, {N_ST}) g
JOIN bench_sentences s ON s.i = {PICK_S1}
JOIN bench_sentences s2 ON s2.i = {PICK_S2})"},
    {"users",
     R"(CREATE TABLE users (
  id bigint NOT NULL PRIMARY KEY,
  email character varying DEFAULT '' NOT NULL,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  encrypted_password character varying DEFAULT '' NOT NULL,
  reset_password_token character varying,
  reset_password_sent_at timestamp without time zone,
  sign_in_count integer DEFAULT 0 NOT NULL,
  current_sign_in_at timestamp without time zone,
  last_sign_in_at timestamp without time zone,
  confirmation_token character varying,
  confirmed_at timestamp without time zone,
  confirmation_sent_at timestamp without time zone,
  unconfirmed_email character varying,
  locale character varying,
  encrypted_otp_secret character varying,
  consumed_timestep integer,
  otp_required_for_login boolean DEFAULT false NOT NULL,
  last_emailed_at timestamp without time zone,
  otp_backup_codes character varying[],
  account_id bigint NOT NULL,
  disabled boolean DEFAULT false NOT NULL,
  invite_id bigint,
  chosen_languages character varying[],
  created_by_application_id bigint,
  approved boolean DEFAULT true NOT NULL,
  sign_in_token character varying,
  sign_in_token_sent_at timestamp without time zone,
  webauthn_id character varying,
  sign_up_ip inet,
  skip_sign_in_token boolean,
  role_id bigint,
  settings text,
  time_zone character varying,
  otp_secret character varying,
  age_verified_at timestamp without time zone,
  require_tos_interstitial boolean DEFAULT false NOT NULL
);
CREATE SEQUENCE users_id_seq OWNED BY users.id;
ALTER TABLE users ALTER COLUMN id SET DEFAULT nextval('users_id_seq'::regclass);)",
     R"(INSERT INTO users (id, email, created_at, updated_at, encrypted_password,
  reset_password_token, sign_in_count, confirmation_token, confirmed_at, locale, account_id,
  chosen_languages, sign_up_ip, role_id, settings, time_zone)
SELECT g, 'user' || g || '@mail' || (g % 300) || '.example', '2020-01-01'::timestamp + g * interval '30 minutes',
  '2024-01-01'::timestamp + g * interval '1 minute',
  '$2a$10$' || substr(md5(g::text || 'pw') || md5(g::text || 'pw2'), 1, 53),
  CASE WHEN g % 20 = 0 THEN md5(g::text || 'r') END, g % 300,
  CASE WHEN g % 50 = 0 THEN md5(g::text || 'c') END, '2020-01-02'::timestamp + g * interval '30 minutes',
  (ARRAY['en','de','fr','ja'])[1 + g % 4], g * 10, CASE WHEN g % 7 = 0 THEN '{en}'::character varying[] END,
  ('10.' || (g / 65536) % 256 || '.' || (g / 256) % 256 || '.' || g % 256)::inet,
  CASE WHEN g % 100 = 0 THEN 3 END,
  '{"web.reblog_modal":false,"default_language":"en","theme":"default"}',
  CASE WHEN g % 3 = 0 THEN 'Europe/Berlin' END
FROM generate_series(1, {N_USERS}) g)"},
};

// Post-data, as a Rails schema has it: indexes, then foreign keys.
const char* kIndexes = R"(
CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower ON accounts USING btree (lower((username)::text), COALESCE(lower((domain)::text), ''::text));
CREATE INDEX index_accounts_on_uri ON accounts USING btree (uri);
CREATE INDEX index_accounts_on_url ON accounts USING btree (url text_pattern_ops) WHERE (url IS NOT NULL);
CREATE INDEX index_accounts_on_moved_to_account_id ON accounts USING btree (moved_to_account_id) WHERE (moved_to_account_id IS NOT NULL);
CREATE INDEX index_accounts_on_domain_and_id ON accounts USING btree (domain, id);
CREATE INDEX search_index ON accounts USING gin ((((setweight(to_tsvector('simple'::regconfig, (display_name)::text), 'A'::"char") || setweight(to_tsvector('simple'::regconfig, (username)::text), 'B'::"char")) || setweight(to_tsvector('simple'::regconfig, (COALESCE(domain, ''::character varying))::text), 'C'::"char"))));
CREATE UNIQUE INDEX index_conversations_on_uri ON conversations USING btree (uri text_pattern_ops) WHERE (uri IS NOT NULL);
CREATE UNIQUE INDEX index_favourites_on_account_id_and_status_id ON favourites USING btree (account_id, status_id);
CREATE INDEX index_favourites_on_account_id_and_id ON favourites USING btree (account_id, id);
CREATE INDEX index_favourites_on_status_id ON favourites USING btree (status_id);
CREATE UNIQUE INDEX index_follows_on_account_id_and_target_account_id ON follows USING btree (account_id, target_account_id);
CREATE INDEX index_follows_on_target_account_id ON follows USING btree (target_account_id);
CREATE INDEX index_media_attachments_on_account_id_and_status_id ON media_attachments USING btree (account_id, status_id DESC);
CREATE UNIQUE INDEX index_media_attachments_on_shortcode ON media_attachments USING btree (shortcode text_pattern_ops) WHERE (shortcode IS NOT NULL);
CREATE INDEX index_media_attachments_on_status_id ON media_attachments USING btree (status_id);
CREATE INDEX index_media_attachments_on_scheduled_status_id ON media_attachments USING btree (scheduled_status_id) WHERE (scheduled_status_id IS NOT NULL);
CREATE INDEX index_notifications_on_account_id_and_id_and_type ON notifications USING btree (account_id, id DESC, type);
CREATE INDEX index_notifications_on_activity_id_and_activity_type ON notifications USING btree (activity_id, activity_type);
CREATE INDEX index_notifications_on_from_account_id ON notifications USING btree (from_account_id);
CREATE INDEX index_notifications_on_account_id_and_group_key ON notifications USING btree (account_id, group_key) WHERE (group_key IS NOT NULL);
CREATE UNIQUE INDEX index_preview_cards_on_url ON preview_cards USING btree (url);
CREATE INDEX index_preview_cards_on_trendable ON preview_cards USING btree (id) WHERE (trendable = true);
CREATE INDEX index_statuses_20190820 ON statuses USING btree (account_id, id DESC, visibility, updated_at) WHERE (deleted_at IS NULL);
CREATE INDEX index_statuses_local_20190824 ON statuses USING btree (id DESC, account_id) WHERE ((local OR (uri IS NULL)) AND (deleted_at IS NULL) AND (visibility = 0) AND (reblog_of_id IS NULL) AND ((NOT reply) OR (in_reply_to_account_id = account_id)));
CREATE INDEX index_statuses_public_20200119 ON statuses USING btree (id DESC, account_id) WHERE ((deleted_at IS NULL) AND (visibility = 0) AND (reblog_of_id IS NULL) AND ((NOT reply) OR (in_reply_to_account_id = account_id)));
CREATE INDEX index_statuses_on_account_id ON statuses USING btree (account_id);
CREATE INDEX index_statuses_on_conversation_id ON statuses USING btree (conversation_id) WHERE (deleted_at IS NULL);
CREATE INDEX index_statuses_on_deleted_at ON statuses USING btree (deleted_at) WHERE (deleted_at IS NOT NULL);
CREATE INDEX index_statuses_on_in_reply_to_account_id ON statuses USING btree (in_reply_to_account_id) WHERE (in_reply_to_account_id IS NOT NULL);
CREATE INDEX index_statuses_on_in_reply_to_id ON statuses USING btree (in_reply_to_id) WHERE (in_reply_to_id IS NOT NULL);
CREATE INDEX index_statuses_on_reblog_of_id_and_account_id ON statuses USING btree (reblog_of_id, account_id);
CREATE UNIQUE INDEX index_statuses_on_uri ON statuses USING btree (uri text_pattern_ops) WHERE (uri IS NOT NULL);
CREATE INDEX index_statuses_on_edited_at ON statuses USING btree (edited_at) WHERE (edited_at IS NOT NULL);
CREATE UNIQUE INDEX index_users_on_email ON users USING btree (email);
CREATE UNIQUE INDEX index_users_on_confirmation_token ON users USING btree (confirmation_token);
CREATE UNIQUE INDEX index_users_on_reset_password_token ON users USING btree (reset_password_token) WHERE (reset_password_token IS NOT NULL);
CREATE INDEX index_users_on_account_id ON users USING btree (account_id);
CREATE INDEX index_users_on_role_id ON users USING btree (role_id) WHERE (role_id IS NOT NULL);
ALTER TABLE ONLY statuses ADD CONSTRAINT fk_9bda1543f7 FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE ONLY statuses ADD CONSTRAINT fk_c7fa917661 FOREIGN KEY (in_reply_to_account_id) REFERENCES accounts(id) ON DELETE SET NULL;
ALTER TABLE ONLY statuses ADD CONSTRAINT fk_rails_256483a9ab FOREIGN KEY (reblog_of_id) REFERENCES statuses(id) ON DELETE CASCADE;
ALTER TABLE ONLY statuses ADD CONSTRAINT fk_rails_94a6f70399 FOREIGN KEY (in_reply_to_id) REFERENCES statuses(id) ON DELETE SET NULL;
ALTER TABLE ONLY media_attachments ADD CONSTRAINT fk_96dd81e81b FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE SET NULL;
ALTER TABLE ONLY media_attachments ADD CONSTRAINT fk_rails_31fc5aeef1 FOREIGN KEY (status_id) REFERENCES statuses(id) ON DELETE SET NULL;
ALTER TABLE ONLY follows ADD CONSTRAINT fk_32ed1b5560 FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE ONLY follows ADD CONSTRAINT fk_745ca29eac FOREIGN KEY (target_account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE ONLY favourites ADD CONSTRAINT fk_5eb6c2b873 FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE ONLY favourites ADD CONSTRAINT fk_b0e856845e FOREIGN KEY (status_id) REFERENCES statuses(id) ON DELETE CASCADE;
ALTER TABLE ONLY notifications ADD CONSTRAINT fk_c141c8ee55 FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE ONLY notifications ADD CONSTRAINT fk_fbd6b0bf9e FOREIGN KEY (from_account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE ONLY users ADD CONSTRAINT fk_50500f500d FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
CREATE MATERIALIZED VIEW instances AS SELECT domain, count(*) AS accounts_count FROM accounts WHERE domain IS NOT NULL GROUP BY domain;
CREATE UNIQUE INDEX index_instances_on_domain ON instances USING btree (domain);
)";

}  // namespace

absl::Status GenerateMastodonData(PgConnection* conn, double scale,
                                  const std::function<void(const std::string&)>& step,
                                  MastodonDataStats* stats) {
  auto rows = [&](double base) {
    return std::max<int64_t>(10, static_cast<int64_t>(std::llround(base * scale)));
  };
  const int64_t n_acc = rows(80000), n_st = rows(960000), n_ma = rows(240000), n_conv = rows(80000),
                n_pc = rows(64000), n_not = rows(400000);
  const int64_t n_fol = 5 * n_acc, n_fav = 6 * n_acc, n_users = std::max<int64_t>(1, n_acc / 10);
  const std::vector<std::pair<std::string, std::string>> vars = {
      {"{N_ACC}", absl::StrCat(n_acc)},
      {"{N_ST}", absl::StrCat(n_st)},
      {"{N_MA}", absl::StrCat(n_ma)},
      {"{N_CONV}", absl::StrCat(n_conv)},
      {"{N_PC}", absl::StrCat(n_pc)},
      {"{N_NOT}", absl::StrCat(n_not)},
      {"{N_FOL}", absl::StrCat(n_fol)},
      {"{N_FAV}", absl::StrCat(n_fav)},
      {"{N_USERS}", absl::StrCat(n_users)},
      {"{PICK_HOST}", Pick("g / 37", 3000)},
      {"{PICK_ACC}", Pick("g * 3 + 1", n_acc)},
      {"{PICK_ACC2}", Pick("g * 5 + 2", n_acc)},
      {"{PICK_ST}", Pick("g * 7 + 3", n_st)},
      {"{PICK_MA}", Pick("g * 11 + 4", n_ma)},
      {"{PICK_CONV}", Pick("g * 13 + 5", n_conv)},
      {"{PICK_W1}", Pick("g * 17 + 6", 4096)},
      {"{PICK_W2}", Pick("g * 19 + 7", 4096)},
      {"{PICK_S1}", Pick("g * 23 + 8", 50000)},
      {"{PICK_S2}", Pick("g * 29 + 9", 50000)},
  };
  auto sql = [&](const char* text) {
    std::string s = text;
    // Longer names first: {N_ACC} before... (no name is a prefix of another).
    for (const auto& [k, v] : vars) s = absl::StrReplaceAll(s, {{k, v}});
    return s;
  };
  if (step) step("words");
  // Pseudo-words of letters, and 50,000 sentences of 6 to 19 of them.
  RETURN_IF_ERROR(conn->Exec(R"(
SET synchronous_commit = off;
CREATE FUNCTION timestamp_id(table_name text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE time_part bigint; sequence_base bigint; tail bigint;
BEGIN
  time_part := (date_part('epoch', now()) * 1000)::bigint << 16;
  sequence_base := ('x' || substr(md5(table_name || 'salt'), 1, 4))::bit(16)::bigint;
  tail := (sequence_base + nextval(table_name || '_id_seq')) & 65535;
  RETURN time_part | tail;
END $$;
CREATE UNLOGGED TABLE bench_words AS
  SELECT i, substr(translate(md5(i::text), '0123456789', 'aeioulnrst'), 1 + i % 5, 2 + i % 9) AS w
  FROM generate_series(0, 4095) i;
CREATE UNLOGGED TABLE bench_sentences AS
  SELECT s AS i, string_agg(w.w, ' ' ORDER BY k) AS t
  FROM generate_series(0, 49999) s
  CROSS JOIN LATERAL generate_series(1, 6 + s % 14) k
  JOIN bench_words w ON w.i = abs(hashint8(s::bigint * 64 + k)) % 4096
  GROUP BY s;
CREATE INDEX ON bench_words (i);
CREATE INDEX ON bench_sentences (i);
ANALYZE bench_words; ANALYZE bench_sentences;)"));
  for (const Table& t : kTables) {
    if (step) step(t.name);
    RETURN_IF_ERROR(conn->Exec(t.ddl));
    RETURN_IF_ERROR(conn->Exec(sql(t.fill)));
  }
  if (step) step("indexes and foreign keys");
  RETURN_IF_ERROR(conn->Exec(kIndexes));
  RETURN_IF_ERROR(conn->Exec(absl::StrCat(
      "DROP TABLE bench_words, bench_sentences;"
      "SELECT setval('accounts_id_seq', ",
      n_acc, "); SELECT setval('statuses_id_seq', ", n_st,
      "); SELECT setval('media_attachments_id_seq', ", n_ma,
      "); SELECT setval('conversations_id_seq', ", n_conv, "); SELECT setval('favourites_id_seq', ",
      n_fav, "); SELECT setval('follows_id_seq', ", n_fol,
      "); SELECT setval('notifications_id_seq', ", n_not,
      "); SELECT setval('preview_cards_id_seq', ", n_pc, "); SELECT setval('users_id_seq', ",
      n_users, ");")));
  if (stats != nullptr) {
    stats->accounts = n_acc;
    stats->statuses = n_st;
    stats->total_rows = n_acc + n_st + n_ma + n_conv + n_pc + n_not + n_fol + n_fav + n_users + 591;
  }
  return absl::OkStatus();
}

}  // namespace bench
}  // namespace mastodon_restore
