//! Creating a shard file that no name shows until it is complete, and naming it at the end.
//!
//! ```text
//!  open(dir of key, O_TMPFILE [| O_DIRECT])   unnamed inode in the key's own folder
//!      └─ folder missing ─► mkdir -p, open again
//!  ... writes ...
//!  linkat(fd ─► ROOT/key)                      the shard appears whole, atomically
//!      └─ key exists (a repair replacing a shard) ─► link to a .tmp name, rename over it
//! ```
//!
//! An unnamed file costs the filesystem one directory insertion per shard. The older scheme
//! (create `ROOT/.tmp/name`, rename to the key) costs an insertion, a removal and a second
//! insertion, all of the first two in one folder that every writer of the site contends for;
//! `perf` of 4 KiB PUTs put over half of the gateway's CPU in those directory operations. A
//! crash before the link leaves no name behind (the kernel frees the inode; on an ext4 without
//! a journal it stays allocated until the next fsck). Filesystems without `O_TMPFILE` get the
//! older scheme ([`Pending::Named`]), as do filesystems that refuse `O_DIRECT` without it.
//!
//! Opening and linking are plain system calls on the core's thread: monoio offers neither
//! `O_TMPFILE` nor `linkat` through `io_uring`, and both are short metadata operations.

use std::cell::Cell;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};

use monoio::fs::File;

/// How a new shard file becomes visible under its key.
#[derive(Clone)]
pub enum Pending {
    /// An `O_TMPFILE` inode: linked under the key at commit.
    Unnamed,
    /// A file under `.tmp`: renamed to the key at commit, unlinked on abort.
    Named(PathBuf),
}

/// A new, empty shard file.
pub struct Created {
    pub file: File,
    pub pending: Pending,
    /// Opened with `O_DIRECT`.
    pub direct: bool,
    /// Folders were created for the key (their parents need an fsync too).
    pub made_folders: bool,
}

/// What this site's filesystem turned out to support; starts optimistic, learns from errors.
pub struct Support {
    tmpfile: Cell<bool>,
    direct: Cell<bool>,
}

impl Support {
    /// Tries unnamed files only if `unnamed` (the site's `unnamed_files`), `O_DIRECT` only if
    /// `direct` (its `direct_io`).
    #[must_use]
    pub fn new(direct: bool, unnamed: bool) -> Support {
        Support {
            tmpfile: Cell::new(unnamed),
            direct: Cell::new(direct),
        }
    }

    /// Creates the file for the shard at `final_path` under the site's `root`; `named` is the
    /// `.tmp` path to use if unnamed files are not supported. `direct` asks for `O_DIRECT`
    /// (granted only where the filesystem supports it). Missing folders of the key are
    /// created, never a missing root (an unmounted disk): that stays `NotFound`.
    pub async fn create(
        &self,
        root: &Path,
        final_path: &Path,
        named: impl FnOnce() -> PathBuf,
        direct: bool,
    ) -> io::Result<Created> {
        let mut direct = direct && self.direct.get();
        if self.tmpfile.get() {
            let folder = final_path.parent().unwrap_or(final_path);
            let mut created_dirs = false;
            loop {
                match open_unnamed(folder, direct) {
                    Ok(std_file) => {
                        return Ok(Created {
                            file: File::from_std(std_file)?,
                            pending: Pending::Unnamed,
                            direct,
                            made_folders: created_dirs,
                        })
                    }
                    Err(err)
                        if err.kind() == io::ErrorKind::NotFound
                            && !created_dirs
                            && root.is_dir() =>
                    {
                        monoio::fs::create_dir_all(folder).await?;
                        created_dirs = true;
                    }
                    Err(err) if is_unsupported(&err) && direct => {
                        // EINVAL is how both flags are refused: try without O_DIRECT first.
                        if open_unnamed(folder, false).is_ok() {
                            self.direct.set(false);
                        } else {
                            self.tmpfile.set(false);
                            break;
                        }
                        direct = false;
                    }
                    Err(err) if is_unsupported(&err) => {
                        self.tmpfile.set(false);
                        break;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        let path = named();
        let std_file = match open_named(&path, direct) {
            Err(err) if is_unsupported(&err) && direct => {
                self.direct.set(false);
                direct = false;
                open_named(&path, false)
            }
            other => other,
        }?;
        Ok(Created {
            file: File::from_std(std_file)?,
            pending: Pending::Named(path),
            direct,
            made_folders: false,
        })
    }
}

fn is_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::EISDIR)
    )
}

fn open_unnamed(folder: &Path, direct: bool) -> io::Result<std::fs::File> {
    let mut flags = libc::O_TMPFILE;
    if direct {
        flags |= libc::O_DIRECT;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .mode(0o644)
        .custom_flags(flags)
        .open(folder)
}

fn open_named(path: &Path, direct: bool) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(if direct { libc::O_DIRECT } else { 0 })
        .open(path)
}

/// Gives the unnamed file `file` the name `path`, which must not exist. Uses
/// `AT_EMPTY_PATH` where permitted, else the `/proc/self/fd` link `open(2)` documents.
pub fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    let fd = file.as_raw_fd();
    let target = c_path(path)?;
    let empty = c"";
    // SAFETY: both strings are NUL-terminated and live across the call; `fd` is open.
    let rc = unsafe {
        libc::linkat(
            fd,
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EPERM | libc::ENOENT)) {
        return Err(err);
    }
    let proc_path = c_path(Path::new(&format!("/proc/self/fd/{fd}")))?;
    // SAFETY: as above.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc_path.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes all of `buf` at `offset` with plain `pwrite` calls on the calling thread: for the
/// few kilobytes of a small shard, cheaper than a trip through `io_uring`'s worker threads
/// (ext4 cannot start a buffered write without possibly blocking, so `io_uring` hands every
/// one to a worker: a thread switch per write).
pub fn write_all_at_now(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    let fd = file.as_raw_fd();
    while !buf.is_empty() {
        let at =
            libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: `buf` is a live slice of `buf.len()` bytes; `fd` is open.
        let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), at) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        let n = n.unsigned_abs();
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Turns `O_DIRECT` off on an open file, for a last write that is not block-aligned.
pub fn clear_direct(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on an open descriptor with integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}
