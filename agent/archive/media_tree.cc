#include "agent/archive/media_tree.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {
namespace {

// Mastodon's media folders and the attachment folders Paperclip makes
// directly under each (":class/:attachment/:id_partition/:style/:file").
// `at_fixed_place`: recognised by name alone at the fixed places.
struct MediaFolder {
  absl::string_view name;
  std::vector<absl::string_view> attachments;
  bool at_fixed_place;
};

const std::vector<MediaFolder>& MediaFolders() {
  static const std::vector<MediaFolder>* folders = new std::vector<MediaFolder>{
      {"accounts", {"avatars", "headers"}, true},
      {"media_attachments", {"files", "thumbnails"}, true},
      {"custom_emojis", {"images"}, true},
      {"preview_cards", {"images"}, true},
      {"site_uploads", {"files"}, true},
      {"imports", {"data"}, true},
      {"cache", {}, true},  // cache/<folder>/<attachment>/...: remote media
      {"preview_card_providers", {"icons"}, false},
      {"backups", {"dumps"}, false},
  };
  return *folders;
}

const MediaFolder* FindFolder(absl::string_view name) {
  for (const MediaFolder& f : MediaFolders()) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

// parts[i] is the folder `f` with its attachment folder below and at least
// one directory between that and the file.
bool HasPaperclipShape(const std::vector<std::string>& parts, size_t i, const MediaFolder& f) {
  if (f.name == "cache") {
    if (i + 1 >= parts.size()) return false;
    const MediaFolder* inner = FindFolder(parts[i + 1]);
    return inner != nullptr && inner->name != "cache" && HasPaperclipShape(parts, i + 1, *inner);
  }
  if (i + 3 >= parts.size()) return false;
  for (absl::string_view a : f.attachments) {
    if (parts[i + 1] == a) return true;
  }
  return false;
}

// parts[0..i) is a fixed place for a media folder.
bool FixedPlace(const std::vector<std::string>& parts, size_t i) {
  if (i == 0 || parts[i - 1] == "system" || parts[i - 1] == "media") return true;
  for (size_t j = 0; j < i; ++j) {
    if (absl::StartsWith(parts[j], "media") &&
        (absl::EndsWith(parts[j], ".tar") || absl::EndsWith(parts[j], ".tgz"))) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::optional<MediaPlace> MediaPlaceOf(const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const MediaFolder* f = FindFolder(parts[i]);
    if (f == nullptr) continue;
    if (!(f->at_fixed_place && FixedPlace(parts, i)) && !HasPaperclipShape(parts, i, *f)) {
      continue;
    }
    std::vector<std::string> root(parts.begin(), parts.begin() + i);
    return MediaPlace{absl::StrJoin(root, "/"), parts[i]};
  }
  return std::nullopt;
}

bool IsFixedMediaRoot(const std::string& root) {
  if (root.empty()) return true;
  std::vector<std::string> parts = absl::StrSplit(root, '/');
  parts.push_back("");  // where the media folder would be
  return FixedPlace(parts, parts.size() - 1);
}

std::optional<std::string> PathInMediaTree(const std::string& path, const std::string& root) {
  std::optional<MediaPlace> place = MediaPlaceOf(path);
  if (!place.has_value() || place->root != root) return std::nullopt;
  return root.empty() ? path : path.substr(root.size() + 1);
}

}  // namespace mastodon_restore
