#!/bin/bash
# install-binary.sh NAME PACKAGE DEST: install fleetform's binary NAME (cargo package
# PACKAGE) for this node's architecture at DEST, from the cluster store when it holds
# one, else built here once per architecture. Embedded in the user data
# (reconciler/src/aws/resources/user_data.rs); tested alone by tests/e2e/install_binary.rs.
#
# Store keys under $STORE (s3://bucket/prefix): bin/$ARCH/NAME, its sha256 in
# NAME.sha256 (written last: the binary counts as published once it is there), and
# the lock NAME.lock while a node builds. Protocol:
#   1. Published (sha256 there, binary matches it): download it. Done.
#   2. Else create the lock with a conditional write (If-None-Match: *). The one node
#      that succeeds builds from the source bundle, publishes binary then sha256
#      (with its instance id and the bundle's hash as metadata), deletes the lock.
#      It rewrites the lock every LOCK_REFRESH s while it builds.
#   3. The others find the lock held and look again every POLL s until the binary
#      is published. A lock not rewritten for LOCK_STALE s (its builder died: spot
#      reclaim, crash) is taken over with If-Match on its ETag, so one node wins.
# An AWS CLI without conditional writes (v2 before 2.17.34; AL2023 images of 2024
# ship 2.17.18) cannot coordinate: then this node builds and publishes on its own.
#
# Environment: STORE (required), SOURCE_BUNDLE (key of the source tarball under
# STORE), NODE_ID (who holds the lock; the instance id), ARCH (default uname -m),
# LOCK_STALE / LOCK_REFRESH / POLL (seconds; defaults 600 / 60 / 15), BUILD_TIMEOUT
# (default 5400).
# Test only: FLEETFORM_TEST_BUILD_COMMAND, when set, replaces the build: it runs as
# `$FLEETFORM_TEST_BUILD_COMMAND OUT` and must write the binary to OUT. The user
# data never sets it; the tests use it to stand in for a cargo build.
set -euo pipefail

log() { echo "install-binary: $*"; }

if [ "${1:-}" = --build ]; then
  # The build, as its own process so that `timeout` can bound it: --build PACKAGE NAME OUT.
  package=$2 name=$3 out=$4
  if [ -n "${FLEETFORM_TEST_BUILD_COMMAND:-}" ]; then exec $FLEETFORM_TEST_BUILD_COMMAND "$out"; fi
  export HOME=${HOME:-/root}
  dnf install -y -q gcc tar gzip
  [ -x "$HOME/.cargo/bin/cargo" ] || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  rm -rf /opt/fleetform-src && mkdir -p /opt/fleetform-src
  aws s3 cp "$STORE/$SOURCE_BUNDLE" - --only-show-errors | tar -xz -C /opt/fleetform-src
  (cd /opt/fleetform-src && "$HOME/.cargo/bin/cargo" build --release --locked -p "$package")
  exec cp "/opt/fleetform-src/target/release/$name" "$out"
fi

NAME=$1 PACKAGE=$2 DEST=$3
: "${STORE:?STORE must be s3://bucket/prefix}" && STORE=${STORE%/}
SOURCE_BUNDLE=${SOURCE_BUNDLE:-bin/src/fleetform-src.tar.gz}
NODE_ID=${NODE_ID:-$(hostname)}
ARCH=${ARCH:-$(uname -m)}
LOCK_STALE=${LOCK_STALE:-600} LOCK_REFRESH=${LOCK_REFRESH:-60} POLL=${POLL:-15}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-5400}
URL="$STORE/bin/$ARCH/$NAME"
BUCKET=${STORE#s3://} && BUCKET=${BUCKET%%/*}
PREFIX=${STORE#"s3://$BUCKET"} && PREFIX=${PREFIX#/} && PREFIX=${PREFIX:+$PREFIX/}
LOCK_KEY="${PREFIX}bin/$ARCH/$NAME.lock"
export STORE SOURCE_BUNDLE
WORK=$(mktemp -d)
echo "$NODE_ID" >"$WORK/lock"
LOCKED=0 REFRESHER=
cleanup() {
  # Stop the refresher and wait for it: a refresh still in flight would write the lock
  # again after the delete below.
  if [ -n "$REFRESHER" ]; then kill "$REFRESHER" 2>/dev/null || true; wait "$REFRESHER" 2>/dev/null || true; fi
  [ "$LOCKED" = 0 ] || aws s3api delete-object --bucket "$BUCKET" --key "$LOCK_KEY" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Install the published binary: 0 when DEST holds bytes matching the published sha256.
fetch() {
  local want got
  want=$(aws s3 cp "$URL.sha256" - --only-show-errors 2>/dev/null | awk '{print $1}') || return 1
  [ -n "$want" ] || return 1
  aws s3 cp "$URL" "$WORK/fetched" --only-show-errors || return 1
  got=$(sha256sum "$WORK/fetched" | awk '{print $1}')
  if [ "$got" != "$want" ]; then
    log "$URL has sha256 $got, its .sha256 says $want (a publish in progress?)"
    return 1
  fi
  install -m 0755 "$WORK/fetched" "$DEST"
}

# A conditional write of the lock (extra put-object options in "$@"): 0 written,
# 1 precondition failed (someone else holds or took it), 2 the CLI has no such option,
# 3 another error (logged).
put_lock() {
  local err
  if err=$(aws s3api put-object --bucket "$BUCKET" --key "$LOCK_KEY" --body "$WORK/lock" \
    --metadata "holder=$NODE_ID" "$@" 2>&1 >/dev/null); then return 0; fi
  case "$err" in
    *PreconditionFailed* | *ConditionalRequestConflict* | *"(412)"* | *"(409)"*) return 1 ;;
    *"Unknown options"*) return 2 ;;
    *) log "writing s3://$BUCKET/$LOCK_KEY: $err"; return 3 ;;
  esac
}

# Build, publish, install. With the lock held (argument `locked`), keep it fresh while
# building; the exit trap deletes it however the script ends, and the refresher stops
# with the script even when the script is killed.
build_and_publish() {
  local sha source started=$SECONDS
  if [ "$1" = locked ]; then
    LOCKED=1
    # A TERM ends the refresher at once while it sleeps (`wait` is interruptible) and
    # after the write when it is writing (bash runs traps once a foreground child ends).
    (trap 'exit 0' TERM
    while kill -0 $$ 2>/dev/null; do
      sleep "$LOCK_REFRESH" & wait $!
      aws s3 cp "$WORK/lock" "s3://$BUCKET/$LOCK_KEY" --metadata "holder=$NODE_ID" --only-show-errors || true
    done) &
    REFRESHER=$!
    if fetch; then log "$URL was published meanwhile: installed it"; return; fi
  fi
  log "building $NAME for $ARCH from $SOURCE_BUNDLE (other $ARCH nodes wait for it)"
  timeout "$BUILD_TIMEOUT" "$BASH" "$0" --build "$PACKAGE" "$NAME" "$WORK/built"
  sha=$(sha256sum "$WORK/built" | awk '{print $1}')
  source=$(aws s3 cp "$STORE/$SOURCE_BUNDLE.sha256" - --only-show-errors 2>/dev/null || echo unknown)
  aws s3 cp "$WORK/built" "$URL" --only-show-errors
  printf '%s' "$sha" | aws s3 cp - "$URL.sha256" --only-show-errors \
    --metadata "fleetform-built-by=$NODE_ID,fleetform-source-sha256=$source"
  install -m 0755 "$WORK/built" "$DEST"
  log "built $NAME in $((SECONDS - started)) s and published $URL (sha256 $sha)"
}

# The lock is held: take it over when stale (0), else say who holds it (1).
take_over_if_stale() {
  local info modified etag holder age rc=0
  info=$(aws s3api head-object --bucket "$BUCKET" --key "$LOCK_KEY" \
    --query '[LastModified,ETag,Metadata.holder]' --output text 2>/dev/null) || return 1
  IFS=$'\t' read -r modified etag holder <<<"$info"
  age=$(($(date +%s) - $(date -d "$modified" +%s)))
  if [ "$age" -lt "$LOCK_STALE" ]; then
    log "waited $SECONDS s for $holder to publish $URL (lock refreshed $age s ago); next look in $POLL s"
    return 1
  fi
  log "the lock of $holder is stale ($age s without a refresh): taking it over"
  put_lock --if-match "$etag" || rc=$?
  if [ "$rc" = 2 ]; then
    # A CLI with If-None-Match but not yet If-Match (2.17.34 to 2.22.4): delete and
    # create; two nodes may then both build, which costs time but is correct.
    aws s3api delete-object --bucket "$BUCKET" --key "$LOCK_KEY" >/dev/null 2>&1 || true
    rc=0 && put_lock --if-none-match '*' || rc=$?
  fi
  return "$rc"
}

errors=0
while true; do
  if fetch; then log "installed $DEST from $URL"; exit 0; fi
  rc=0 && put_lock --if-none-match '*' || rc=$?
  case $rc in
    0) build_and_publish locked; exit 0 ;;
    1) if take_over_if_stale; then build_and_publish locked; exit 0; fi ;;
    2) log "this AWS CLI ($(aws --version 2>&1)) has no conditional writes: building without a lock"
       build_and_publish unlocked; exit 0 ;;
    3) errors=$((errors + 1))
       if [ "$errors" -ge 10 ]; then log "the lock cannot be written: building without it"; build_and_publish unlocked; exit 0; fi ;;
  esac
  sleep "$POLL"
done
