// What the parallel load reads from pg_dump's post-data statements: which
// tables an index or constraint works on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/database/sql_splitter.h"

namespace mastodon_restore {
namespace {

using ::testing::ElementsAre;

TEST(ScanQualifiedNameTest, PlainQuotedAndQualified) {
  size_t pos = 0;
  EXPECT_EQ(ScanQualifiedName("public.statuses (id)", &pos), "public.statuses");
  EXPECT_EQ(pos, 15u);
  pos = 5;
  EXPECT_EQ(ScanQualifiedName("COPY public.\"Odd \"\"name\"\"\" (a) FROM stdin;", &pos),
            "public.\"Odd \"\"name\"\"\"");
  pos = 0;
  EXPECT_EQ(ScanQualifiedName("\"unterminated", &pos), "");
  EXPECT_EQ(pos, 0u);
  pos = 0;
  EXPECT_EQ(ScanQualifiedName("(x)", &pos), "");
}

TEST(ParsePostDataStatementTest, IndexesAreSharedOnTheirTable) {
  PostDataTarget t;
  ASSERT_TRUE(ParsePostDataStatement(
      "CREATE INDEX index_statuses_20190820 ON public.statuses USING btree (account_id, id "
      "DESC) WHERE (deleted_at IS NULL);",
      &t));
  EXPECT_TRUE(t.index);
  EXPECT_THAT(t.tables, ElementsAre("public.statuses"));
  ASSERT_TRUE(ParsePostDataStatement(
      "CREATE UNIQUE INDEX \"Idx on\" ON ONLY public.\"Parted table\" USING btree (id);", &t));
  EXPECT_THAT(t.tables, ElementsAre("public.\"Parted table\""));
}

TEST(ParsePostDataStatementTest, ConstraintsAndForeignKeys) {
  PostDataTarget t;
  ASSERT_TRUE(ParsePostDataStatement(
      "ALTER TABLE ONLY public.statuses\n    ADD CONSTRAINT statuses_pkey PRIMARY KEY (id);", &t));
  EXPECT_FALSE(t.index);
  EXPECT_THAT(t.tables, ElementsAre("public.statuses"));
  ASSERT_TRUE(ParsePostDataStatement(
      "ALTER TABLE ONLY public.statuses\n    ADD CONSTRAINT fk_9bda1543f7 FOREIGN KEY "
      "(account_id) REFERENCES public.accounts(id) ON DELETE CASCADE;",
      &t));
  EXPECT_THAT(t.tables, ElementsAre("public.statuses", "public.accounts"));
  // A self-reference names the table once; quoted columns may hold ')'.
  ASSERT_TRUE(ParsePostDataStatement(
      "ALTER TABLE ONLY public.statuses ADD CONSTRAINT fk FOREIGN KEY (\"odd)col\") "
      "REFERENCES public.statuses(id);",
      &t));
  EXPECT_THAT(t.tables, ElementsAre("public.statuses"));
}

TEST(ParsePostDataStatementTest, AnythingElseIsNotParallel) {
  PostDataTarget t;
  EXPECT_FALSE(ParsePostDataStatement("ALTER TABLE public.statuses CLUSTER ON idx;", &t));
  EXPECT_FALSE(ParsePostDataStatement(
      "ALTER INDEX public.parent_pkey ATTACH PARTITION public.child_pkey;", &t));
  EXPECT_FALSE(ParsePostDataStatement(
      "CREATE TRIGGER t BEFORE INSERT ON public.statuses FOR EACH ROW EXECUTE FUNCTION f();", &t));
  EXPECT_FALSE(ParsePostDataStatement("CREATE INDEXES x ON y (z);", &t));
  EXPECT_FALSE(ParsePostDataStatement(
      "ALTER TABLE ONLY public.a ADD CONSTRAINT fk FOREIGN KEY (x) REFERENCES;", &t));
}

}  // namespace
}  // namespace mastodon_restore
