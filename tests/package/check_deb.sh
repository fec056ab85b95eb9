#!/usr/bin/env bash
# Builds the Debian package from a build tree, unpacks it into a throwaway
# root and checks it: paths, conffiles, dependencies, the systemd unit
# against the packaged binary, --version from the unpacked root, and lintian
# (no errors).
set -euo pipefail
build="$1"
out="$(mktemp -d /tmp/mr-deb.XXXXXX)"
trap 'rm -rf "$out"' EXIT
(cd "$build" && cpack -G DEB -B "$out/pkg" >/dev/null)
deb="$(ls "$out"/pkg/mastodon-restore_*_amd64.deb)"
root="$out/root"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$out/control"

fail() { echo "FAIL: $*" >&2; exit 1; }
for f in usr/bin/mastodon-restore usr/bin/mastodon-restore-agent \
         usr/lib/systemd/system/mastodon-restore-agent.service \
         etc/mastodon-restore/agent.conf usr/share/doc/mastodon-restore/copyright \
         usr/share/doc/mastodon-restore/changelog.gz usr/share/doc/mastodon-restore/ci.md \
         usr/share/doc/mastodon-restore/mastodon-restore.txt usr/share/doc/mastodon-restore/fleet.md \
         usr/share/ansible/collections/ansible_collections/mastodon/restore/galaxy.yml \
         usr/share/ansible/collections/ansible_collections/mastodon/restore/plugins/modules/restore.py \
         usr/share/doc/mastodon-restore/examples/ansible/restore.yml; do
  [ -e "$root/$f" ] || fail "missing /$f"
done
grep -qx /etc/mastodon-restore/agent.conf "$out/control/conffiles" || fail "agent.conf is not a conffile"
depends="$(dpkg-deb -f "$deb" Depends)"
for d in postgresql-client-15 libgrpc++1.51 libpq5 libarchive13 libsystemd0; do
  case "$depends" in *"$d"*) ;; *) fail "Depends lacks $d: $depends" ;; esac
done

# The binaries run from the unpacked root.
"$root/usr/bin/mastodon-restore-agent" --version | grep -q "mastodon-restore-agent" || fail "agent --version"
"$root/usr/bin/mastodon-restore" --version | grep -q "mastodon-restore" || fail "cli --version"
grep -q "verify-backup" "$root/usr/share/doc/mastodon-restore/mastodon-restore.txt" || fail "usage text"

# The unit starts the packaged binary with the packaged configuration.
unit="$root/usr/lib/systemd/system/mastodon-restore-agent.service"
grep -qx 'ExecStart=/usr/bin/mastodon-restore-agent --config /etc/mastodon-restore/agent.conf' "$unit" \
  || fail "ExecStart"
sed "s|/usr/bin/mastodon-restore-agent|$root/usr/bin/mastodon-restore-agent|; s|/etc/mastodon-restore|$root/etc/mastodon-restore|" \
  "$unit" > "$out/mastodon-restore-agent.service"
verify="$(systemd-analyze verify "$out/mastodon-restore-agent.service" 2>&1 || true)"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
# The packaged configuration is one the agent starts with (socket and state
# moved into the throwaway root).
"$root/usr/bin/mastodon-restore-agent" --config "$root/etc/mastodon-restore/agent.conf" \
  --socket "$out/agent.sock" --state-dir "$out/state" --runtime none 2>"$out/agent.log" &
agent=$!
for _ in $(seq 1 100); do [ -S "$out/agent.sock" ] && break; sleep 0.1; done
[ -S "$out/agent.sock" ] || { kill "$agent" 2>/dev/null || true; fail "the agent did not start with agent.conf: $(cat "$out/agent.log")"; }
"$root/usr/bin/mastodon-restore" --agent "$out/agent.sock" health >/dev/null || fail "health"
kill -TERM "$agent"
wait "$agent" || fail "the agent did not stop cleanly"

# The packaged collection is one ansible-core loads (Debian 12's 2.14).
if command -v ansible-doc >/dev/null; then
  ANSIBLE_COLLECTIONS_PATH="$root/usr/share/ansible/collections" ansible-doc -t module \
    mastodon.restore.restore 2>&1 | grep -q "request_id" || fail "ansible-doc mastodon.restore.restore"
fi

errors="$(lintian "$deb" 2>/dev/null | grep '^E:' || true)"
[ -z "$errors" ] || fail "lintian: $errors"
echo "OK: $(basename "$deb"): $(dpkg-deb -f "$deb" Installed-Size) KiB installed, lintian clean of errors"
