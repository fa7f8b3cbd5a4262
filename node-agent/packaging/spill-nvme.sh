#!/bin/bash
# spill-nvme.sh: put the agent's spill directory on the node's instance-store NVMe and
# print its path (or the root-disk one when the node has none). Run by the user data
# at first boot, then by fleetform-spill.service at every boot, before the agent:
# a runcmd runs once per instance, and a mount it makes is gone after a reboot,
# while a stop and start hands the instance blank devices.
# Idempotent: it mounts what the first boot made, and makes it only when it is absent.
# Embedded in the user data (reconciler/src/aws/resources/user_data.rs) of node types with
# instance-store NVMe; tested booted by tests/e2e/boot.rs.
set -euo pipefail
MNT=/mnt/fleetform-nvme
# The file system's label, how a reboot finds it (XFS: 12 characters at most).
LABEL=fleetform

log() { echo "spill-nvme: $*" >&2; }

# The instance-store devices: their NVMe model, as EC2 reports it.
DEVS=$(lsblk -dpno NAME,MODEL | awk '/Amazon EC2 NVMe Instance Storage/ {print $1}')
if [ -z "$DEVS" ]; then
  log "no instance-store NVMe: spilling to the root disk"
  echo /var/lib/fleetform/spill
  exit 0
fi
if ! mountpoint -q "$MNT"; then
  mkdir -p "$MNT"
  NDEVS=$(echo "$DEVS" | grep -c .)
  # After a reboot, the file system made at first boot (on the RAID 0 udev assembled).
  [ "$NDEVS" -le 1 ] || mdadm --assemble --scan >/dev/null 2>&1 || true
  DEV=$(blkid -L "$LABEL" || true)
  if [ -z "$DEV" ]; then
    # First boot, or blank devices after a stop and start: the data is scratch by design.
    DEV=$(echo "$DEVS" | head -n 1)
    if [ "$NDEVS" -gt 1 ]; then
      command -v mdadm >/dev/null || dnf install -y -q mdadm >&2
      # shellcheck disable=SC2086 # one word per device
      mdadm --create /dev/md0 --run --level=0 --raid-devices="$NDEVS" $DEVS >&2
      DEV=/dev/md0
    fi
    log "making an XFS file system on $DEV ($NDEVS device(s))"
    mkfs.xfs -q -f -L "$LABEL" "$DEV"
  fi
  mount -o noatime "$DEV" "$MNT"
  log "mounted $DEV on $MNT"
fi
mkdir -p "$MNT/spill"
chown fleetform:fleetform "$MNT/spill"
echo "$MNT/spill"
