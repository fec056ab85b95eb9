// libFuzzer target: the statement classifier and its tokenizer on arbitrary
// text, in both contexts and string syntaxes. Checks its invariants: token
// spans lie inside the input and do not overlap, a PASSWORD span lies
// inside the statement, an allowed statement has no refusal and a refused
// one has a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/dump/statement_classifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mastodon_restore;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (bool scs : {true, false}) {
    TokenizeResult tokens = TokenizeSql(text, scs);
    size_t last_end = 0;
    for (const SqlToken& t : tokens.tokens) {
      if (t.begin < last_end || t.end < t.begin || t.end > size) std::abort();
      last_end = t.end;
    }
    for (StatementContext context : {StatementContext::kDatabase, StatementContext::kGlobals}) {
      ClassifyOptions options;
      options.context = context;
      options.standard_conforming_strings = scs;
      StatementClass c = ClassifyStatement(text, options);
      if (c.allowed != c.refusal.empty()) std::abort();
      if (c.kind.empty()) std::abort();
      for (const auto& span : c.password_spans) {
        if (span.first > span.second || span.second > size) std::abort();
      }
      std::string stripped = text;
      StripPasswordClauses(c, &stripped);
      if (stripped.size() > size) std::abort();
    }
  }
  return 0;
}
