// Which files of a backup belong to a Mastodon media tree: one definition
// for the inventory (which counts them) and the media restore (which copies
// exactly those, so nothing else of a backup, its env file or its dump,
// ever lands in the web-served media directory).
#ifndef MR_AGENT_ARCHIVE_MEDIA_TREE_H_
#define MR_AGENT_ARCHIVE_MEDIA_TREE_H_

#include <optional>
#include <string>

namespace mastodon_restore {

// Where a file of a Mastodon media tree sits.
struct MediaPlace {
  // The tree's root: the path above the media folder ("public/system";
  // "" at the source's top).
  std::string root;
  // The media folder below the root ("accounts", "cache", ...).
  std::string folder;
};

// The media tree the walked path `path` (a file's, "a/b/c.png") belongs to,
// or nullopt when it is in none. The first component that is one of
// Mastodon's media folders (accounts, media_attachments, cache,
// custom_emojis, preview_cards, site_uploads, imports; by shape only:
// preview_card_providers, backups) starts the tree when it sits at a fixed
// place (the top, below system/ or media/, inside a media*.tar archive), or,
// under any other prefix, when the path below it has Paperclip's shape
// (<folder>/<attachment>/<at least one directory>/<file>, the attachment
// being the folder's: media_attachments/files, accounts/avatars,
// cache/<folder>/<attachment>, ...).
std::optional<MediaPlace> MediaPlaceOf(const std::string& path);

// True when `root` is a place MediaPlaceOf recognises folders by name
// alone (else the tree was recognised by its shape).
bool IsFixedMediaRoot(const std::string& root);

// The path of `path` below the media tree rooted at `root`, when the file
// belongs to that tree (MediaPlaceOf(path)->root == root); else nullopt.
std::optional<std::string> PathInMediaTree(const std::string& path, const std::string& root);

}  // namespace mastodon_restore

#endif  // MR_AGENT_ARCHIVE_MEDIA_TREE_H_
