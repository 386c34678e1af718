#!/usr/bin/env bash
# Debian's prometheus (for `promtool check config/rules`) and haproxy (`haproxy -c`), so the deploy
# config checks in tests/deploy run instead of skipping. Installs only what is missing (needs root and
# apt; no service is started: the packages' daemons are not used, only their checkers).
# Outside CI a failure is a warning and those checks skip; under CI=true it fails the build.
set -uo pipefail

say() { echo "ensure_tools: $*" >&2; }
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0

give_up() {
  say "$*"
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  say "the promtool / haproxy config checks will skip (outside CI)"
  exit 0
}
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  give_up "cannot install ${missing[*]} here (needs root and apt)"
fi
say "installing Debian's ${missing[*]} for the deploy config checks"
export DEBIAN_FRONTEND=noninteractive
install() { timeout 600 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; }
install || { timeout 180 apt-get update -q >/dev/null 2>&1 && install; } \
  || give_up "apt-get install ${missing[*]} failed"
# The packages' post-install may start their daemons where no policy-rc.d forbids it; nothing here uses them.
for service in "${missing[@]}"; do
  command -v service >/dev/null 2>&1 && service "$service" stop >/dev/null 2>&1
done
exit 0
