#!/usr/bin/env bash
# Mounts a journaled ext4 filesystem, kept in an image file on a loop device (direct I/O to
# the image, so no second page cache), for benchmark sites on machines whose own filesystem
# is an ext4 *without* a journal. There, the inode allocator skips inodes freed in the last
# few seconds by scanning for them (`recently_deleted` in ext4's ialloc.c), so small-object
# PUT figures swing with how much was deleted just before: 4 KiB PUTs at concurrency 64
# measured 147 to 7,164 ops/s on this machine's root filesystem for the same binary, against
# a steady 4,400–4,700 on this mount. Production disks carry a journal (or XFS).
#
#   perf-scripts/journaled-fs.sh mount DIR [--size 60G] [--image FILE (default DIR.img)]
#   perf-scripts/journaled-fs.sh umount DIR [--image FILE]   unmounts and deletes the image
#
# Then: perf-scripts/bench-matrix.sh --state DIR/state ...   (needs root for mount/losetup)
set -euo pipefail

die() { echo "journaled-fs: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: journaled-fs.sh mount|umount DIR [--size 60G] [--image FILE]"
action=$1 dir=$2
shift 2
size=60G image="${dir%/}.img"
while [ $# -gt 0 ]; do
    case "$1" in
    --size) size=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    *) die "unknown option $1" ;;
    esac
done

case "$action" in
mount)
    mountpoint -q "$dir" && die "$dir is already a mount point"
    mkdir -p "$dir"
    truncate -s "$size" "$image"
    mkfs.ext4 -q -F -O has_journal "$image"
    loop=$(losetup --find --show --direct-io=on "$image")
    # discard: space freed in the filesystem is punched out of the image file again.
    mount -o discard "$loop" "$dir"
    echo "journaled-fs: $image ($size, ext4 with journal) on $loop mounted at $dir"
    ;;
umount)
    if mountpoint -q "$dir"; then
        loop=$(findmnt -no SOURCE "$dir")
        umount "$dir"
        case "$loop" in /dev/loop*) losetup -d "$loop" 2>/dev/null || true ;; esac
    fi
    rm -f "$image"
    rmdir "$dir" 2>/dev/null || true
    echo "journaled-fs: $dir unmounted, $image removed"
    ;;
*) die "unknown action $action (mount or umount)" ;;
esac
