#!/usr/bin/env python3
"""A passthrough FUSE filesystem that fails fsync on demand.

The tests need real fsync(2) failures, as a dying disk gives them, to check
that the server stops acknowledging audio it cannot make durable. This mirrors
ROOT at MOUNTPOINT and passes every call through to ROOT, except that it
consults CONTROL on every fsync:

  CONTROL/fail_fsync     exists: fsync/fdatasync of a regular file -> EIO
  CONTROL/fail_fsyncdir  exists: fsync of a directory -> EIO

An empty control file fails every such call; a non-empty one fails only the
calls whose path (relative to the mount, starting with "/") contains one of
its lines, so a test can break one file while the rest of the data directory
keeps working.

Usage: python3 faultfs.py ROOT MOUNTPOINT CONTROL

It runs in the foreground until unmounted or sent SIGTERM (libfuse then
unmounts cleanly); tests/common/faultfs.rs starts and stops it. Needs fusepy
and Debian's libfuse2 (scripts/setup.sh: ensure_faultfs).
"""

import errno
import os
import signal
import sys
import threading
import time

from fuse import FUSE, FuseOSError, Operations, fuse_get_context


class FaultFs(Operations):
    # Times in nanoseconds, as os.stat gives them (and no deprecation warning).
    use_ns = True
    # With hard_remove (below) an unlinked file that is still open has no
    # path; libfuse then passes None instead of failing the call, and every
    # operation that gets a handle uses the handle.
    flag_nullpath_ok = 1

    def __init__(self, root, control):
        self.root = os.path.realpath(root)
        self.control = os.path.realpath(control)
        # The path each file handle was opened under: the fallback for
        # matching a fault against a file that has since been unlinked.
        self.opened_as = {}

    # Helpers

    def _full(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _fault(self, name, path):
        """Whether CONTROL/name asks this call on `path` to fail.

        Read on every call, so a test flips faults without restarting."""
        try:
            with open(os.path.join(self.control, name)) as f:
                wanted = [line.strip() for line in f.read().splitlines()]
        except FileNotFoundError:
            return False
        wanted = [w for w in wanted if w]
        return not wanted or any(w in (path or "") for w in wanted)

    def _own(self, full):
        # The daemon runs as root, so what it creates would be root's; the
        # caller's ownership is what a real filesystem would record.
        if os.geteuid() == 0:
            uid, gid, _ = fuse_get_context()
            os.chown(full, uid, gid, follow_symlinks=False)

    @staticmethod
    def _stat_dict(st):
        keys = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid",
                "st_size", "st_blocks", "st_blksize", "st_rdev")
        attrs = {k: getattr(st, k) for k in keys}
        attrs["st_atime"] = st.st_atime_ns
        attrs["st_mtime"] = st.st_mtime_ns
        attrs["st_ctime"] = st.st_ctime_ns
        return attrs

    # Metadata

    def getattr(self, path, fh=None):
        if fh is not None:
            return self._stat_dict(os.fstat(fh.fh))
        return self._stat_dict(os.lstat(self._full(path)))

    def access(self, path, amode):
        if not os.access(self._full(path), amode, follow_symlinks=False):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path), uid, gid, follow_symlinks=False)

    def utimens(self, path, times=None):
        if times is None:
            os.utime(self._full(path), follow_symlinks=False)
        else:
            os.utime(self._full(path), ns=times, follow_symlinks=False)

    def statfs(self, path):
        sv = os.statvfs(self._full(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(sv, k) for k in keys}

    # Names

    def mknod(self, path, mode, dev):
        os.mknod(self._full(path), mode, dev)
        self._own(self._full(path))

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)
        self._own(self._full(path))

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def unlink(self, path):
        os.unlink(self._full(path))

    def rename(self, old, new):
        os.rename(self._full(old), self._full(new))

    def link(self, target, source):
        os.link(self._full(source), self._full(target))

    def symlink(self, target, source):
        os.symlink(source, self._full(target))
        self._own(self._full(target))

    def readlink(self, path):
        return os.readlink(self._full(path))

    # Directories: opened as real descriptors so fsyncdir has one to sync.

    def opendir(self, path):
        return os.open(self._full(path), os.O_RDONLY | os.O_DIRECTORY)

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def releasedir(self, path, fh):
        os.close(fh)

    def fsyncdir(self, path, datasync, fh):
        if self._fault("fail_fsyncdir", path):
            raise FuseOSError(errno.EIO)
        os.fsync(fh)

    # Files (raw_fi: `fi` is libfuse's fuse_file_info; fi.fh the descriptor)

    def create(self, path, mode, fi):
        # The caller's flags as given (read+write, O_EXCL, O_APPEND...), not
        # a fixed O_WRONLY, so the descriptor behaves as the caller's does.
        full = self._full(path)
        fi.fh = os.open(full, fi.flags | os.O_CREAT, mode)
        self._own(full)
        self.opened_as[fi.fh] = path
        return 0

    def open(self, path, fi):
        # O_APPEND reaches the backing descriptor, so pwrite below appends at
        # the backing file's end whatever offset the kernel computed.
        fi.fh = os.open(self._full(path), fi.flags)
        self.opened_as[fi.fh] = path
        return 0

    def read(self, path, size, offset, fi):
        return os.pread(fi.fh, size, offset)

    def write(self, path, data, offset, fi):
        return os.pwrite(fi.fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh.fh, length)
        else:
            os.truncate(self._full(path), length)

    def flush(self, path, fi):
        # Called on each close(2) of the caller's descriptor; closing a
        # duplicate surfaces the backing filesystem's close errors there.
        os.close(os.dup(fi.fh))

    def release(self, path, fi):
        self.opened_as.pop(fi.fh, None)
        os.close(fi.fh)

    def fsync(self, path, datasync, fi):
        # Never ENOSYS: the kernel would stop sending FSYNC and report
        # success for every later fsync(2) without asking.
        if self._fault("fail_fsync", path or self.opened_as.get(fi.fh)):
            raise FuseOSError(errno.EIO)
        if datasync:
            os.fdatasync(fi.fh)
        else:
            os.fsync(fi.fh)


def unmount_when_orphaned():
    """SIGTERMs this process once its parent (the test) has gone.

    A test killed by its runner never unmounts; libfuse's SIGTERM handler
    does, instead of leaving a live mount behind in /tmp."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: faultfs.py ROOT MOUNTPOINT CONTROL")
    root, mountpoint, control = sys.argv[1:]
    for d in (root, mountpoint, control):
        if not os.path.isdir(d):
            sys.exit(f"faultfs: {d} is not a directory")
    # The kernel has already applied the caller's umask to the modes it
    # sends; the daemon's own would mask them a second time.
    os.umask(0)
    threading.Thread(target=unmount_when_orphaned, daemon=True).start()
    FUSE(
        FaultFs(root, control),
        mountpoint,
        raw_fi=True,
        foreground=True,
        nothreads=False,
        fsname="faultfs",
        subtype="faultfs",
        # The kernel checks permissions against the modes getattr reports,
        # as on a real filesystem, rather than the daemon allowing all.
        default_permissions=True,
        # Unlink at once instead of renaming open files to .fuse_hidden*,
        # which would keep their folder from being removed.
        hard_remove=True,
        use_ino=True,
        # Writes as large as the caller's, not split into 4 KiB requests.
        big_writes=True,
        # No caching of names or attributes: what a test changes in ROOT
        # directly is seen through the mount at once.
        entry_timeout=0,
        negative_timeout=0,
        attr_timeout=0,
    )


if __name__ == "__main__":
    main()
