#include "agent/common/service_notify.h"

#include <systemd/sd-daemon.h>

#include "absl/strings/str_cat.h"

namespace mastodon_restore {

void NotifyReady(const std::string& status) {
  ::sd_notify(0, absl::StrCat("READY=1\nSTATUS=", status).c_str());
}

void NotifyStopping(const std::string& status) {
  ::sd_notify(0, absl::StrCat("STOPPING=1\nSTATUS=", status).c_str());
}

}  // namespace mastodon_restore
