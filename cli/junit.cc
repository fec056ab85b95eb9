#include "cli/junit.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;
namespace {

double Seconds(const v1::Operation& op) {
  if (!op.has_start_time() || !op.has_end_time()) return 0;
  return static_cast<double>(op.end_time().seconds() - op.start_time().seconds()) +
         (op.end_time().nanos() - op.start_time().nanos()) / 1e9;
}

struct Case {
  std::string classname;
  std::string name;
  double seconds = 0;
  bool failed = false;
  std::string message;
};

}  // namespace

std::string XmlEscape(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 allows no other control characters.
        if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') {
          out += '?';
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string JUnitReport(const std::string& source, const v1::Operation& restore,
                        const v1::Operation* verify) {
  std::vector<Case> cases;
  Case r;
  r.classname = "verify-backup";
  r.name = "restore";
  r.seconds = Seconds(restore);
  r.failed = restore.state() != v1::OPERATION_STATE_SUCCEEDED;
  r.message = restore.has_error() ? restore.error().message() : "";
  cases.push_back(r);
  if (verify != nullptr) {
    for (const v1::VerifyCheck& check : verify->verify_result().checks()) {
      Case c;
      c.classname = "verify-backup.check";
      c.name = check.name();
      c.failed = !check.passed();
      c.message = check.message();
      cases.push_back(c);
    }
    if (verify->verify_result().checks().empty() && verify->has_error()) {
      Case c;
      c.classname = "verify-backup";
      c.name = "verify";
      c.failed = true;
      c.message = verify->error().message();
      cases.push_back(c);
    }
  }
  int failures = 0;
  double total = Seconds(restore) + (verify != nullptr ? Seconds(*verify) : 0);
  for (const Case& c : cases) failures += c.failed ? 1 : 0;
  std::string xml = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<testsuites name=\"mastodon-restore verify-backup\" tests=\"%d\" failures=\"%d\" "
      "time=\"%.3f\">\n"
      "  <testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" errors=\"0\" time=\"%.3f\">\n",
      cases.size(), failures, total, XmlEscape(source), cases.size(), failures, total);
  for (const Case& c : cases) {
    absl::StrAppendFormat(&xml, "    <testcase classname=\"%s\" name=\"%s\" time=\"%.3f\"",
                          XmlEscape(c.classname), XmlEscape(c.name), c.seconds);
    if (c.failed) {
      absl::StrAppendFormat(&xml,
                            ">\n      <failure message=\"%s\">%s</failure>\n    </testcase>\n",
                            XmlEscape(c.message), XmlEscape(c.message));
    } else if (!c.message.empty()) {
      absl::StrAppendFormat(&xml, ">\n      <system-out>%s</system-out>\n    </testcase>\n",
                            XmlEscape(c.message));
    } else {
      absl::StrAppend(&xml, "/>\n");
    }
  }
  absl::StrAppend(&xml, "  </testsuite>\n</testsuites>\n");
  return xml;
}

}  // namespace mastodon_restore
